"""Sub-modules given as built modules or as configs, so every model also works without one."""
from typing import Mapping, Union

from torch import nn

from mmrisfusion.registry import MODELS


def build_module(module: Union[nn.Module, Mapping], what: str) -> nn.Module:
    """``module`` itself when it is built, else the module its config describes.

    Args:
        module (nn.Module | dict): A module, or its config with a ``type`` in ``MODELS``.
        what (str): What the module is for, e.g. ``'RISFusion.fuser'``, for the error.

    Returns:
        nn.Module: The module.
    """
    if isinstance(module, nn.Module):
        return module
    if not isinstance(module, Mapping) or 'type' not in module:
        raise TypeError(f'{what} must be an nn.Module or a config dict with a type, got '
                        f'{module!r}')
    return MODELS.build(module)
