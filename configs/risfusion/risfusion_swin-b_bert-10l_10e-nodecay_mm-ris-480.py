# RIS-FUSION with LAVT's optimisation choices: no weight decay on the backbone's norms and
# relative position tables (../_base_/schedules/schedule_10e_nodecay.py), and only BERT's
# first 10 transformer layers trained (embeddings and the last 2 layers fixed), as LAVT
# optimises BERT. Everything else is the published recipe
# (./risfusion_swin-b_bert_10e_mm-ris-480.py).
_base_ = [
    '../_base_/models/risfusion_swin-b.py',
    '../_base_/datasets/mm_ris_480x480.py',
    '../_base_/schedules/schedule_10e_nodecay.py',
    '../_base_/default_runtime.py',
]
model = dict(text_encoder=dict(num_trainable_layers=10))
train_dataloader = dict(batch_size=16)
val_evaluator = dict(type='RISMetric')
test_evaluator = [dict(type='RISMetric'), dict(type='FusionMetric')]
default_hooks = dict(
    logger=dict(log_metric_by_epoch=True),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1, save_best='oIoU',
                    rule='greater'))
log_processor = dict(by_epoch=True)
