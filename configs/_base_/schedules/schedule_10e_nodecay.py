# The published 10-epoch schedule with LAVT's weight-decay groups: no decay on the norm
# layers and the relative position tables of the backbone (and on absolute position
# embeddings, when a backbone has them); the fuser, the text encoder and the decode head keep
# their decay as in LAVT.
# How: the longest matching custom key wins and no other rule applies to that parameter, so
# the keys 'fuser', 'text_encoder' and 'decode_head' shield those modules (their norms keep
# the decay), and norm_decay_mult=0 then reaches only the backbone's norm layers.
_base_ = ['./schedule_10e.py']
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'fuser': dict(lr_mult=2.0),
            'text_encoder': dict(lr_mult=1.0, decay_mult=1.0),
            'decode_head': dict(lr_mult=1.0, decay_mult=1.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'absolute_pos_embed': dict(decay_mult=0.0),
        }))
