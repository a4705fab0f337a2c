# MM-RIS in its official parquet format, preprocessed as published (RIS-FUSION): both images
# resized to 480x480 ignoring the aspect ratio (bilinear, Pillow; mask nearest), BERT uncased
# tokens cut to 20, no augmentation. Normalisation (ImageNet for both modalities) happens in
# the model's RISDataPreProcessor.
# Files: data/mm_ris/ as released, mm_ris_train_part1.parquet and mm_ris_train_part2.parquet
# (the train split, read as one by the pattern below, in name order), mm_ris_val.parquet and
# mm_ris_test.parquet. A merged train file (the published merge_parquet.py): set
# train_dataloader.dataset.data_path='mm_ris_train.parquet'. data_path also takes a list of
# files or patterns. The tokenizer is a local folder (nothing is downloaded); see
# TokenizeText for where bert-base-uncased comes from.
dataset_type = 'MMRISDataset'
data_root = 'data/mm_ris'
tokenizer_path = 'data/pretrained/bert-base-uncased'
img_scale = (480, 480)  # (width, height)
max_tokens = 20

train_pipeline = [
    dict(type='LoadRISImages', ir_channels=3, decode_backend='pillow'),
    dict(type='LoadRISAnnotation'),
    dict(type='RISResize', scale=img_scale, keep_ratio=False, backend='pillow'),
    dict(type='TokenizeText', tokenizer_path=tokenizer_path, max_length=max_tokens),
    dict(type='PackRISInputs'),
]
test_pipeline = [
    dict(type='LoadRISImages', ir_channels=3, decode_backend='pillow'),
    dict(type='LoadRISAnnotation'),
    dict(type='RISResize', scale=img_scale, keep_ratio=False, backend='pillow'),
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
        data_path='mm_ris_train_part*.parquet',
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
        data_path='mm_ris_val.parquet',
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
        data_path='mm_ris_test.parquet',
        test_mode=True,
        pipeline=test_pipeline))
