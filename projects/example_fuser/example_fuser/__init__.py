"""An mmrisfusion plugin: a fusion block registered into ``mmrisfusion.registry.MODELS``.

Importing the package registers the block; a config pulls it in with
``custom_imports = dict(imports=['example_fuser'], allow_failed_imports=False)``.
"""
from .text_channel_gate import TextChannelGateFusion

__all__ = ['TextChannelGateFusion']
