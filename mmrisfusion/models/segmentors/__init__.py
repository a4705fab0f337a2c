from .fusion_model import FusionModel

__all__ = ['FusionModel']
