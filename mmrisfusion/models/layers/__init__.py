from .base_fusion_block import BaseFusionBlock
from .fusion_blocks import AverageFusion, ConcatConvFusion, LangGatedFusion, TextFreeGateFusion
from .lavt_fusion import PWAM, HorizontalContext, LanguageGate
from .pixel_word_attention import PixelWordAttention

__all__ = [
    'AverageFusion', 'BaseFusionBlock', 'ConcatConvFusion', 'HorizontalContext',
    'LangGatedFusion', 'LanguageGate', 'PixelWordAttention', 'PWAM', 'TextFreeGateFusion'
]
