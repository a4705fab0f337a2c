from .lavt_swin import LAVTSwinTransformer

__all__ = ['LAVTSwinTransformer']
