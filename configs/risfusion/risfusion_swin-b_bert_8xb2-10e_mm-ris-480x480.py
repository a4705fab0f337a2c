# The published recipe (./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py) on 8 GPUs: batch 2
# per GPU, the same total batch of 16, the same learning rates and the same iterations per
# epoch. BatchNorm is synchronised across the GPUs (mmengine converts every BatchNorm of the
# model to torch's SyncBatchNorm under DDP), so its statistics cover the 16 samples of a step
# as on one GPU; the published code converts the segmentation network and the fuser to SyncBN
# too. SyncBN runs on GPUs only: tools/train.py refuses it on the CPU.
#   bash tools/dist_train.sh configs/risfusion/risfusion_swin-b_bert_8xb2-10e_mm-ris-480x480.py 8
# On another number of GPUs the total batch is GPUs x 2: add --auto-scale-lr to scale the
# learning rates by total / 16.
_base_ = ['./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']
train_dataloader = dict(batch_size=2)
sync_bn = 'torch'
