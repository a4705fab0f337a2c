default_scope = 'mmrisfusion'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # NCCL on GPUs; on a machine without GPU, tools/train.py and tools/test.py use gloo
    # (mmrisfusion.utils.setup_launcher).
    dist_cfg=dict(backend='nccl'),
)
# A fixed seed: two runs of a config on one machine repeat their losses (RIS-FUSION's code
# sets none). diff_rank_seed: every rank draws its own drop-path and dropout masks, LDFusion
# noise, crops and patches, and augmentations (seed + rank; the sampler still shuffles alike
# on all ranks). deterministic=True gives a reproducible run, on GPUs too (DeterminismHook
# below): a few backward ops have no deterministic CUDA kernel and warn instead
# (docs/training.md).
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
# torch.compile of the training step (mmengine's option): compile=dict(dynamic=False). Our
# models trace as one graph; a static graph recompiles once per new input shape (e.g. a
# smaller last batch), while compile=True (automatic dynamic shapes) recompiled for over
# 10 minutes when the batch size changed (docs/training.md#torchcompile).
compile = False
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='RISLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RISVisualizationHook', max_samples=4),
    # random states and sampler seed in every checkpoint: a resumed run equals the
    # uninterrupted one (mmrisfusion/engine/hooks/exact_resume_hook.py)
    exact_resume=dict(type='ExactResumeHook'),
    # DDP with plain BN: every rank keeps rank 0's BN statistics (the hook says why)
    broadcast_buffers=dict(type='BroadcastBuffersHook'),
    determinism=dict(type='DeterminismHook'),
)
