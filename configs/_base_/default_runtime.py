default_scope = 'mmrisfusion'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='RISLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# A fixed seed: two runs of a config on one machine repeat their losses (RIS-FUSION's code
# sets none).
randomness = dict(seed=0)
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
)
