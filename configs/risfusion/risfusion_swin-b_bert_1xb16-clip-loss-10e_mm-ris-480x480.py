# RIS-FUSION with LDFusion's language-driven CLIP loss as an extra fusion term: the published
# RIS-FUSION recipe (Dice + 3.0 x the five fusion terms) plus CLIPLanguageLoss on the fused
# luma. Neither published system has this combination; the term's weight (0.1, times lambda
# 3.0) is a starting point that puts it on the scale of the other fusion terms, not a tuned
# value. Patches are 0.5-0.8 of the 480 px side, resized to CLIP's 224.
# Needs OpenAI's ViT-B-32.pt (see
# configs/ldfusion/ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno.py).
_base_ = ['./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']

clip_checkpoint = 'data/pretrained/clip/ViT-B-32.pt'
model = dict(fusion_losses=[
    dict(type='SSIMLoss', source='vis', window_size=11, sigma=1.5, loss_weight=0.5),
    dict(type='LumaMSELoss', source='vis', loss_weight=0.5),
    dict(type='LumaMSELoss', source='ir', loss_weight=2.0),
    dict(type='SobelL1Loss', source='ir', loss_weight=1.0),
    dict(type='JointGradientLoss', loss_weight=1.0),
    dict(type='CLIPLanguageLoss',
         clip=dict(type='OpenCLIPEncoder', checkpoint=clip_checkpoint),
         sim_weight=6.0, global_weight=2.0, patch_weight=10.0, num_patches=32,
         loss_weight=0.1, loss_name='loss_clip'),
])
