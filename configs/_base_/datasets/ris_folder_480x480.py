# Your own referring-segmentation data in the folder layout of RISFolderDataset:
#   data/my_ris/{vi,ir,mask}/ and data/my_ris/{train,val,test}.jsonl
# (one JSON line per referred object: {"name": ..., "expressions": [...]}, optionally
# "image"). Images keep their aspect ratio: resized to fit 480x480 and padded; the padding
# is removed again before predictions are resized back to the original size. Training adds a
# horizontal flip that swaps "left"/"right" in the expression (it must precede TokenizeText).
dataset_type = 'RISFolderDataset'
data_root = 'data/my_ris'
tokenizer_path = 'data/pretrained/bert-base-uncased'
img_scale = (480, 480)  # (width, height)
max_tokens = 20

train_pipeline = [
    dict(type='LoadRISImages', ir_channels=3),
    dict(type='LoadRISAnnotation'),
    dict(type='RISRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RISResizePad', scale=img_scale),
    dict(type='TokenizeText', tokenizer_path=tokenizer_path, max_length=max_tokens),
    dict(type='PackRISInputs'),
]
test_pipeline = [
    dict(type='LoadRISImages', ir_channels=3),
    dict(type='LoadRISAnnotation'),
    dict(type='RISResizePad', scale=img_scale),
    dict(type='TokenizeText', tokenizer_path=tokenizer_path, max_length=max_tokens),
    dict(type='PackRISInputs'),
]
# `tools/test.py --tta` (RISTTAModel): the mean prediction over the sample as it is and
# flipped horizontally with its side words swapped ("left" <-> "right", as RISRandomFlip
# does in training), which keeps the expression true.
tta_model = dict(type='RISTTAModel')
tta_pipeline = test_pipeline[:-2] + [
    dict(type='TestTimeAug',
         transforms=[[dict(type='RISRandomFlip', prob=0.0, direction='horizontal'),
                      dict(type='RISRandomFlip', prob=1.0, direction='horizontal')],
                     test_pipeline[-2:-1], test_pipeline[-1:]])
]
# ris_collate stacks the images in the workers and pin_memory pins the batch, for one
# non-blocking copy to the GPU (the tools turn pin_memory off on a machine without one).
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='mmrisfusion.ris_collate'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.jsonl',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='mmrisfusion.ris_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val.jsonl',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='mmrisfusion.ris_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='test.jsonl',
        test_mode=True,
        pipeline=test_pipeline))
