from .fusion_model import FusionModel
from .ris_tta_model import RISTTAModel
from .risfusion import RISFusion

__all__ = ['FusionModel', 'RISFusion', 'RISTTAModel']
