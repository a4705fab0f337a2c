from .autocast_optim_wrapper import AutocastOptimWrapper, autocast_device_type

__all__ = ['AutocastOptimWrapper', 'autocast_device_type']
