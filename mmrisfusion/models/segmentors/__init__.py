from .fusion_model import FusionModel
from .risfusion import RISFusion

__all__ = ['FusionModel', 'RISFusion']
