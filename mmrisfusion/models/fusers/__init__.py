from .unet_fuser import UNetFuser

__all__ = ['UNetFuser']
