# The previous embedded demo (`make demo` now trains the 1.5k config, which inherits this
# one): the small RIS-FUSION of the 1k config below, trained in
# bfloat16 autocast (AutocastOptimWrapper; on this 2-core CPU with AVX-512 BF16 a step of this
# small model takes about 0.75 s instead of 0.9 s) for the 1200 iterations that keep
# `make demo` under 20 minutes on an idle 2-core machine (2000 took about 27), and with the
# pixels' normalised x/y given to every pixel-word attention (LAVTSwinTransformer(
# fusion_coords=True), not in LAVT: without it the features do not know where an object is,
# as tools/analysis_tools/probe_position.py measures). README.md, "The two commands", has the
# figures per kind of expression.
_base_ = ['./risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py']

model = dict(backbone=dict(fusion_coords=True))

max_iters = 1200
optim_wrapper = dict(type='AutocastOptimWrapper', dtype='bfloat16')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=100, by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
