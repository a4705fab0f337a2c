from .ckpt_convert import convert_official_fuser, official_fuser_config
from .color import (denormalize, normalize, rgb_to_luma, rgb_to_ycbcr,
                    ycbcr_to_rgb)

__all__ = [
    'convert_official_fuser', 'denormalize', 'normalize', 'official_fuser_config',
    'rgb_to_luma', 'rgb_to_ycbcr', 'ycbcr_to_rgb'
]
