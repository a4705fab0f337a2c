# mmrisfusion's demo model (the `make demo` RIS-FUSION: reduced Swin, frozen MiniLM, synthetic
# MM-RIS at 128x128, batch 16, 1000 iterations on a CPU) with TextChannelGateFusion from this
# package at the fuser's injected levels in place of LangGatedFusion. The base comes from the
# installed mmrisfusion (`mmrisfusion::`), the block from the installed example_fuser; nothing
# needs PYTHONPATH. Data and text encoder as for mmrisfusion's `make demo`.
_base_ = ['mmrisfusion::risfusion/risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py']

custom_imports = dict(imports=['example_fuser'], allow_failed_imports=False)

model = dict(
    fuser=dict(
        # _delete_: the base's LangGatedFusion arguments do not apply to this block.
        fusion_block=dict(_delete_=True, type='TextChannelGateFusion', hidden_channels=16)))
