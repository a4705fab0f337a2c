# Deprecated alias: this config was renamed to the one below (the mmseg naming scheme in
# README.md, "Shipped configs"). It goes away in mmrisfusion 0.3.0; get_model() and the tools
# warn when it is used (mmrisfusion/apis/model_zoo.py, DEPRECATED_NAMES).
_base_ = ['./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']
