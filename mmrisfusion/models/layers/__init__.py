from .fusion_blocks import (AverageFusion, ConcatConvFusion, LangGatedFusion,
                            TextFreeGateFusion)
from .pixel_word_attention import PixelWordAttention

__all__ = [
    'AverageFusion', 'ConcatConvFusion', 'LangGatedFusion', 'PixelWordAttention',
    'TextFreeGateFusion'
]
