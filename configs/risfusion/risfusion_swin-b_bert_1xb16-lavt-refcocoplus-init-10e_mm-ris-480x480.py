# RIS-FUSION as its authors trained it: the published recipe
# (./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py) started from LAVT trained on RefCOCO+
# (the published README's --init_from_lavt_one), not from Swin-22k and bert-base alone. The
# Swin, the decoder and BERT take LAVT's weights; the fuser, which LAVT does not have, keeps
# its initialisation. Make the weights once from the LAVT-RIS release file
# (lavt_one_8_cards_ImgNet22KPre_swin-base-window12_refcoco+_adamw_b32lr0.00005wd1e-2_E40.pth):
#   python tools/model_converters/lavt_official.py LAVT.pth \
#       data/pretrained/lavt_one_swin-b_refcocoplus_mmrisfusion.pth
# mmengine loads them after the model's own initialisation (load_from: not strict, the log lists
# the fuser's keys as missing). tools/train.py stops early, naming the file, when it is missing;
# --resume continues from the work dir's checkpoints instead, and --cfg-options load_from=...
# starts from another conversion.
_base_ = ['./risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py']
load_from = 'data/pretrained/lavt_one_swin-b_refcocoplus_mmrisfusion.pth'
# The Swin-22k file is not needed: LAVT's weights replace it. BERT's folder still gives the
# tokenizer and the architecture.
model = dict(backbone=dict(init_cfg=None))
