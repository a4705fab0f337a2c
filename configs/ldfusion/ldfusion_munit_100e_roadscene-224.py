# Deprecated alias: this config was renamed to the one below (the mmseg naming scheme in
# README.md, "Shipped configs"). It goes away in mmrisfusion 0.3.0; get_model() and the tools
# warn when it is used (mmrisfusion/apis/model_zoo.py, DEPRECATED_NAMES).
_base_ = ['./ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno.py']
