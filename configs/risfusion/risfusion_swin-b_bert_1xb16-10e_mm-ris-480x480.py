# RIS-FUSION as published: Swin-B (window 12, ImageNet-22k weights) + BERT-base, UNetFuser
# c=32, Dice + 3.0 x fusion loss, AdamW (RIS network and BERT 5e-5, fuser 1e-4, wd 1e-2),
# poly 0.9 per iteration, 10 epochs of batch 16 on MM-RIS at 480x480, validation every epoch
# and the best checkpoint by oIoU.
# 1xb16: the published total batch of 16 on one GPU. train_dataloader.batch_size is per
# process, so on N GPUs this config trains with N x 16: use the 8xb2 config (8 GPUs x 2,
# SyncBN) to keep the published batch, or let the learning rates follow the total batch with
# `tools/train.py --auto-scale-lr` (x total / 16).
_base_ = [
    '../_base_/models/risfusion_swin-b.py',
    '../_base_/datasets/mm-ris_480x480.py',
    '../_base_/schedules/schedule_10e.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=16)
val_evaluator = dict(type='RISMetric')
# Testing also scores the fused images with the standard fusion metrics (fusion/EN, ...),
# which the published code computes nowhere.
test_evaluator = [dict(type='RISMetric'), dict(type='FusionMetric')]
# Keep the checkpoint with the best oIoU on the validation set (and the latest one).
default_hooks = dict(
    logger=dict(log_metric_by_epoch=True),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1, save_best='oIoU',
                    rule='greater'))
log_processor = dict(by_epoch=True)
