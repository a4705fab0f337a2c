from .lavt_swin import LAVTSwinTransformer
from .lavt_timm import LAVTTimmBackbone

__all__ = ['LAVTSwinTransformer', 'LAVTTimmBackbone']
