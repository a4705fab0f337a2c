# Fusion-only evaluation on TNO (25 IR/VIS pairs, vi/ and ir/ paired by file name): images
# at their own size, no text, no mask. IR is decoded to three equal channels, as the
# default RISDataPreProcessor statistics (3 values per modality) expect.
dataset_type = 'IVIFFolderDataset'
data_root = 'data/ivif/tno'

test_pipeline = [
    dict(type='LoadRISImages', ir_channels=3),
    dict(type='PackRISInputs'),
]
# ris_collate stacks the images in the workers and pin_memory pins the batch, for one
# non-blocking copy to the GPU (the tools turn pin_memory off on a machine without one).
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='mmrisfusion.ris_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        test_mode=True,
        pipeline=test_pipeline))
