from .ldfusion_net import LDFusionNet
from .unet_fuser import UNetFuser

__all__ = ['UNetFuser', 'LDFusionNet']
