from .fusion_blocks import (AverageFusion, ConcatConvFusion, LangGatedFusion,
                            TextFreeGateFusion)
from .lavt_fusion import PWAM, LanguageGate
from .pixel_word_attention import PixelWordAttention

__all__ = [
    'AverageFusion', 'ConcatConvFusion', 'LangGatedFusion', 'LanguageGate',
    'PixelWordAttention', 'PWAM', 'TextFreeGateFusion'
]
