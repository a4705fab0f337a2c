from .base_fusion_block import BaseFusionBlock
from .fusion_blocks import AverageFusion, ConcatConvFusion, LangGatedFusion, TextFreeGateFusion
from .lavt_fusion import PWAM, LanguageGate
from .pixel_word_attention import PixelWordAttention

__all__ = [
    'AverageFusion', 'BaseFusionBlock', 'ConcatConvFusion', 'LangGatedFusion', 'LanguageGate',
    'PixelWordAttention', 'PWAM', 'TextFreeGateFusion'
]
