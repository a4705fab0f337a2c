# The embedded demo (`make demo`): the 1.2k demo config below with 2 to 8 heads in the
# pixel-word attentions, the horizontal context after each of them and a detail map for the
# decoder (below, options not in LAVT), two more Swin blocks in each of the last two stages
# (depths (1, 1, 4, 2): at 128 px these stages are 8x8 and 4x4 tokens, whose windows span
# the image, so the blocks are cheap) and 1500 iterations, which the faster training step
# (channels-last fuser, Sobel and argmax without oneDNN's slow paths, parquet rows read from
# a memory-mapped Arrow copy) fits in the 20 minutes of `make demo` on an idle 2-core
# machine (1600 took 20 min 4 s with the detail map). README.md, "The two commands", has
# the figures per kind of expression and what the other levers measured.
_base_ = ['./risfusion_swin-mini_minilm_1xb16-1.2k_mm-ris-synthetic-128x128.py']

# More heads in every pixel-word attention (LAVT: one): with one head each pixel pools the
# words through one softmax that the category word dominates, and the demo model ignored
# "left"/"right" (masks for an expression and its side-swapped twin overlapped at IoU 0.92);
# with (2, 2, 4, 8) that overlap is 0.66 and position expressions went from 15.6% to 26.6%
# P@0.5 at the same budget.
# A detail map at 1/2 resolution for a finer last decoder step (narrow: 32 channels): at
# the decoder's 1/4, even the ground truth, average-pooled and resized back, scores 78.7
# mIoU on the test split (92.9 at 1/2); with it the found objects' IoU went 0.74 -> 0.79
# and mIoU 55.5 -> 58.5-60.3 at the same budget. What lies left and right of every pixel,
# over the image height, scaled by the expression (HorizontalContext), for "the leftmost
# dog": whether the model learns to read the side words still varies from run to run
# (README).
model = dict(
    backbone=dict(depths=(1, 1, 4, 2), fusion_heads=(2, 2, 4, 8), horizontal_context=True,
                  context_text_gate=True, detail_channels=16),
    decode_head=dict(in_channels=(16, 32, 64, 128, 256), in_index=(0, 1, 2, 3, 4),
                     channels=(64, 64, 64, 32)))

max_iters = 1500
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=100, by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
# Each sample read from the parquet file decodes its whole row group (64 rows): a
# memory-mapped Arrow IPC copy, written on first use, reads one row for about half the
# loading time.
train_dataloader = dict(dataset=dict(cache_dir='data/synthetic_mmris/arrow_cache'))
