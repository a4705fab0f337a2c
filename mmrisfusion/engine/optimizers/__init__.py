from .default_constructor import EagerUpdateOptimWrapperConstructor

__all__ = ['EagerUpdateOptimWrapperConstructor']
