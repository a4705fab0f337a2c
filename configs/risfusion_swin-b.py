# The short name of the published RIS-FUSION recipe:
# configs/risfusion/risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py.
_base_ = ['./risfusion/risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']
