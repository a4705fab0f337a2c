# RIS-FUSION with LAVT's optimisation choices; everything else is the published recipe
# (./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py):
# - nodecay: no weight decay on the backbone's norm layers and relative position tables (and
#   on absolute position embeddings, when a backbone has them); the fuser, the text encoder
#   and the decode head keep their decay, as in LAVT. How: the longest matching custom key
#   wins and no other rule applies to that parameter, so the keys 'fuser' (from the published
#   schedule), 'text_encoder' and 'decode_head' shield those modules (their norms keep the
#   decay), and norm_decay_mult=0 then reaches only the backbone's norm layers;
# - bert-10l: only BERT's first 10 transformer layers trained (embeddings and the last 2
#   layers fixed), as LAVT optimises BERT.
_base_ = ['./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']
model = dict(text_encoder=dict(num_trainable_layers=10))
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'text_encoder': dict(lr_mult=1.0, decay_mult=1.0),
            'decode_head': dict(lr_mult=1.0, decay_mult=1.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'absolute_pos_embed': dict(decay_mult=0.0),
        }))
