# The published recipe (./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py) with another
# language-aware backbone: timm's ConvNeXt-T (ImageNet-22k weights) with LAVT's PWAM and
# language gate after each of its four stages (LAVTTimmBackbone), the decoder sized for its
# widths (96, 192, 384, 768; hidden width half the deepest, as LAVT's 512 for Swin-B's 1024).
# Not tuned: drop path 0.3 as LAVT's Swin-B, the published learning rates and schedule.
# Any timm family fits the same way: set model_name (timm.list_models()) and the decoder's
# in_channels to the backbone's num_features (e.g. efficientnet_b3 with out_indices=(1, 2, 3, 4)).
# Weights come from a local file only, timm's own format (nothing is downloaded); get it on a
# machine with internet access, e.g.
#   huggingface-cli download timm/convnext_tiny.fb_in22k model.safetensors \
#       --local-dir data/pretrained/convnext_tiny.fb_in22k
_base_ = ['./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']
timm_checkpoint = 'data/pretrained/convnext_tiny.fb_in22k/model.safetensors'
model = dict(
    backbone=dict(
        _delete_=True,
        type='LAVTTimmBackbone',
        model_name='convnext_tiny.fb_in22k',
        text_dims=768,
        drop_path_rate=0.3,
        pretrained_cfg_overlay=dict(file=timm_checkpoint)),
    decode_head=dict(in_channels=(96, 192, 384, 768), channels=384))
