from .affine_crops import apply_affine_crops, random_affine_crop_params
from .build import build_module
from .ckpt_convert import (
    convert_hf_bert,
    convert_lavt_official,
    convert_official_fuser,
    convert_risfusion_official,
    convert_swin_official,
    infer_lavt_arch,
    load_hf_bert_folder,
    official_fuser_config,
)
from .color import (
    IMAGENET_MEAN_01,
    IMAGENET_MEAN_255,
    IMAGENET_STD_01,
    IMAGENET_STD_255,
    denormalize,
    normalize,
    rgb_to_luma,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from .frozen import FrozenNet
from .precision import float32_forward

__all__ = [
    'FrozenNet', 'IMAGENET_MEAN_01', 'IMAGENET_MEAN_255', 'IMAGENET_STD_01', 'IMAGENET_STD_255',
    'apply_affine_crops', 'build_module', 'convert_hf_bert', 'convert_lavt_official',
    'convert_official_fuser', 'convert_risfusion_official', 'convert_swin_official',
    'denormalize', 'float32_forward', 'infer_lavt_arch', 'load_hf_bert_folder', 'normalize',
    'official_fuser_config', 'random_affine_crop_params', 'rgb_to_luma', 'rgb_to_ycbcr',
    'ycbcr_to_rgb'
]
