from .activation_checkpoint import checkpoint_call
from .affine_crops import (
    PUBLISHED_AFFINE,
    AffineCrops,
    cut_patches,
    cut_training_crops,
    sample_affine_crops,
)
from .build import build_module
from .ckpt_convert import (
    convert_hf_bert,
    convert_lavt_checkpoint,
    convert_lavt_official,
    convert_ldfusion_official,
    convert_official_fuser,
    convert_risfusion_official,
    convert_swin_official,
    infer_lavt_arch,
    ldfusion_official_config,
    load_hf_bert_folder,
    official_fuser_config,
    split_lavt_checkpoint,
    to_ldfusion_official,
)
from .color import (
    IMAGENET_MEAN_01,
    IMAGENET_MEAN_255,
    IMAGENET_STD_01,
    IMAGENET_STD_255,
    denormalize,
    normalize,
    rgb_to_luma,
    rgb_to_luma_uint8,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from .frozen import FrozenNet
from .precision import float32_forward
from .predictions import class_argmax

__all__ = [
    'AffineCrops', 'FrozenNet', 'IMAGENET_MEAN_01', 'IMAGENET_MEAN_255', 'IMAGENET_STD_01',
    'IMAGENET_STD_255', 'PUBLISHED_AFFINE', 'build_module', 'checkpoint_call', 'class_argmax',
    'convert_hf_bert', 'convert_lavt_checkpoint', 'convert_lavt_official',
    'convert_ldfusion_official', 'convert_official_fuser', 'convert_risfusion_official',
    'convert_swin_official',
    'cut_patches', 'cut_training_crops', 'denormalize', 'float32_forward', 'infer_lavt_arch',
    'ldfusion_official_config', 'load_hf_bert_folder', 'normalize', 'official_fuser_config',
    'rgb_to_luma', 'rgb_to_luma_uint8', 'rgb_to_ycbcr', 'sample_affine_crops',
    'split_lavt_checkpoint', 'to_ldfusion_official', 'ycbcr_to_rgb'
]
