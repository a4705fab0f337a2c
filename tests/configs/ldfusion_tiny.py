# A tiny LDFusion for tests: the published pipeline at toy sizes (a 4-channel LDFusionNet,
# 4 CLIP patches, 64 px crops, a narrow random VGG19 stand-in), 2 epochs. A test fixture, not
# a shipped config (mmrisfusion.list_models() does not list it). CLIP cannot be downloaded
# here: point `clip_folder` at a local HF CLIP folder (the tests write a tiny random one), e.g.
#   --cfg-options model.losses.0.clip.pretrained=/path/to/clip
_base_ = ['../../configs/ldfusion/ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno.py']

clip_folder = 'data/pretrained/tiny_clip'
model = dict(
    fuser=dict(base_channels=4, mlp_channels=16),
    losses=[
        dict(type='CLIPLanguageLoss',
             clip=dict(type='HFCLIPEncoder', pretrained=clip_folder),
             num_patches=4, return_terms=True),
        dict(type='PerceptualMaxLoss', random_init=True, width_divisor=16, loss_weight=10.0),
    ],
    train_crop=dict(size=64))

train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(times=1, dataset=dict(indices=4)))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(indices=2))
test_dataloader = val_dataloader

max_epochs = 2
optim_wrapper = dict(optimizer=dict(lr=5e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
