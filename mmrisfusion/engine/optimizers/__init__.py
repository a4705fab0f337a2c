from .autocast_optim_wrapper import AutocastOptimWrapper, autocast_device_type
from .default_constructor import EagerUpdateOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'EagerUpdateOptimWrapperConstructor', 'autocast_device_type']
