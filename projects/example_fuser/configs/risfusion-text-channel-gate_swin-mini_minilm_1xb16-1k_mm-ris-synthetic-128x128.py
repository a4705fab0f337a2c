# The tiny RIS-FUSION of mmrisfusion with TextChannelGateFusion from this package at the
# fuser's injected levels. Bases come from the installed mmrisfusion (`mmrisfusion::`), the
# block from the installed example_fuser; nothing needs PYTHONPATH. Data and tokenizer as in
# mmrisfusion's configs/risfusion/risfusion_tiny_test.py.
_base_ = ['mmrisfusion::risfusion/risfusion_tiny_test.py']

custom_imports = dict(imports=['example_fuser'], allow_failed_imports=False)

model = dict(
    fuser=dict(
        # _delete_: the base's LangGatedFusion arguments do not apply to this block.
        fusion_block=dict(_delete_=True, type='TextChannelGateFusion', hidden_channels=16)))
