# A tiny RIS-FUSION for tests: the published architecture at toy sizes (a random 2-layer
# BERT built from a config, UNetFuser c=8, a Swin of 16 channels with one block per stage) on
# synthetic MM-RIS resized to 64x64, 2 epochs. It needs no pretrained weights. A test fixture,
# not a shipped config (mmrisfusion.list_models() does not list it); it inherits the shipped
# bases of the checkout. Data and tokenizer as in
# configs/_base_/datasets/mm-ris-synthetic_128x128.py (the tests point both at their own).
_base_ = [
    '../../configs/_base_/models/risfusion_swin-b.py',
    '../../configs/_base_/datasets/mm-ris-synthetic_128x128.py',
    '../../configs/_base_/schedules/schedule_10e.py',
    '../../configs/_base_/default_runtime.py',
]

text_dims = 64
model = dict(
    text_encoder=dict(
        _delete_=True,
        type='HFTextEncoder',
        # the vocabulary of bert-base-uncased, so any uncased BERT tokenizer's ids fit
        hf_config=dict(model_type='bert', vocab_size=30522, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=64),
        out_channels=text_dims),
    fuser=dict(base_channels=8, text_dim=text_dims, token_dim=32, num_heads=2,
               fusion_block=dict(type='LangGatedFusion', embed_dims=32, gate_channels=16)),
    backbone=dict(
        embed_dims=16,
        window_size=4,
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        text_dims=text_dims,
        drop_path_rate=0.1,
        init_cfg=None),
    decode_head=dict(in_channels=(16, 32, 64, 128), channels=16))

img_scale = (64, 64)
train_pipeline = [
    dict(type='LoadRISImages', ir_channels=3, decode_backend='cv2'),
    dict(type='LoadRISAnnotation'),
    dict(type='RISResize', scale=img_scale, backend='cv2'),
    dict(type='TokenizeText', tokenizer_path={{_base_.tokenizer_path}}, max_length=20),
    dict(type='PackRISInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RISMetric')
test_evaluator = val_evaluator

max_epochs = 2
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=5, log_metric_by_epoch=True),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1, save_best='oIoU',
                    rule='greater'))
log_processor = dict(by_epoch=True)
env_cfg = dict(cudnn_benchmark=False)
