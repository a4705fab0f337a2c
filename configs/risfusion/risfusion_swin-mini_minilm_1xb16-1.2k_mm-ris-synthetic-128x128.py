# The embedded demo (`make demo`): the small RIS-FUSION of the 1k config below, trained twice as
# many iterations in about the same time (bfloat16 autocast, AutocastOptimWrapper: a training
# step takes about half the float32 time on a CPU with AVX-512 BF16, and it also runs on a
# GPU), and with the pixels' normalised x/y given to every pixel-word attention
# (LAVTSwinTransformer(fusion_coords=True), not in LAVT: without it the features do not know
# where an object is, as tools/analysis_tools/probe_position.py measures). Against the 1k
# config: test mIoU 54.8 instead of 48.1; "the rightmost bicycle" or "the second dog from the
# left" are still near chance (P@0.5 18% instead of 12%). README.md, "The two commands", has
# the figures per kind of expression.
_base_ = ['./risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py']

model = dict(backbone=dict(fusion_coords=True))

max_iters = 2000
optim_wrapper = dict(type='AutocastOptimWrapper', dtype='bfloat16')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=100, by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
