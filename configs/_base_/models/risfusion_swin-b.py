# RIS-FUSION (arXiv 2509.12710): text -> UNetFuser -> LAVT (language-aware Swin-B + simple
# decoding), trained with Dice + lambda * fusion loss.
# Pretrained files are local paths (nothing is downloaded):
# - data/pretrained/bert-base-uncased: the Hugging Face folder of bert-base-uncased (also the
#   tokenizer of the dataset pipeline);
# - data/pretrained/swin_base_patch4_window12_384_22k.pth: the official Swin-B 22k weights,
#   loaded when training starts (init_weights), not needed to test a trained checkpoint.
bert_path = 'data/pretrained/bert-base-uncased'
swin_checkpoint = 'data/pretrained/swin_base_patch4_window12_384_22k.pth'

# One normalisation for both modalities (ImageNet, as published). The data preprocessor
# takes it on the 0..255 scale, the fuser (which de-normalises its inputs and normalises its
# output) on the 0..1 scale: change both together.
img_mean = [123.675, 116.28, 103.53]
img_std = [58.395, 57.12, 57.375]
# The BatchNorm of the fuser and of the decode head (published: BN). Multi-GPU training
# synchronises both: set norm_cfg=dict(type='SyncBN', requires_grad=True) in a leaf's
# model.fuser and model.decode_head, or sync_bn='torch' (mmengine converts every BN).
norm_cfg = dict(type='BN', requires_grad=True)

data_preprocessor = dict(
    type='RISDataPreProcessor',
    vis_mean=img_mean,
    vis_std=img_std,
    ir_mean=img_mean,
    ir_std=img_std,
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='RISFusion',
    data_preprocessor=data_preprocessor,
    text_encoder=dict(type='HFTextEncoder', model_path=bert_path, out_channels=768),
    fuser=dict(
        type='UNetFuser',
        base_channels=32,
        text_dim=768,
        token_dim=256,
        num_heads=4,
        inject_levels=(3, 4),
        fusion_block=dict(type='LangGatedFusion'),
        norm_cfg=norm_cfg,
        vis_mean=[m / 255 for m in img_mean],
        vis_std=[s / 255 for s in img_std],
        ir_mean=[m / 255 for m in img_mean],
        ir_std=[s / 255 for s in img_std]),
    backbone=dict(
        type='LAVTSwinTransformer',
        embed_dims=128,
        patch_size=4,
        window_size=12,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        fusion_heads=(1, 1, 1, 1),
        text_dims=768,
        drop_path_rate=0.3,
        fusion_drop=0.0,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=swin_checkpoint)),
    decode_head=dict(
        type='SimpleDecodingHead',
        in_channels=(128, 256, 512, 1024),
        channels=512,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=True,
        # The published two-class Dice. LAVT's own loss is close to mmseg's
        # dict(type='CrossEntropyLoss', class_weight=[0.9, 1.1]), which divides by the pixel
        # count where LAVT's F.cross_entropy divides by the summed class weights.
        loss_decode=dict(type='TwoClassDiceLoss', loss_weight=1.0)),
    # The published weights (lambda = 3.0; the terms with weight 0 are left out).
    fusion_losses=[
        dict(type='SSIMLoss', source='vis', window_size=11, sigma=1.5, loss_weight=0.5),
        dict(type='LumaMSELoss', source='vis', loss_weight=0.5),
        dict(type='LumaMSELoss', source='ir', loss_weight=2.0),
        dict(type='SobelL1Loss', source='ir', loss_weight=1.0),
        dict(type='JointGradientLoss', loss_weight=1.0),
    ],
    fusion_loss_weight=3.0,
    train_cfg=dict(),
    # Masks at the network's resolution, as the published evaluation (its pipeline resizes
    # the ground truth to 480x480 too); 'ori_shape' resizes them to the original images.
    test_cfg=dict(output_shape='img_shape'))
# `tools/train.py --amp` on a GPU (float16): the first loss scale. mmengine's default 2^16
# overflows the fuser's gradients for the first steps; 2^15 is clean.
amp_loss_scale = dict(init_scale=2.**15)
