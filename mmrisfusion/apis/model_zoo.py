"""Find and build the shipped configs by name (as mmpretrain's ``list_models``/``get_model``)."""
import fnmatch
from pathlib import Path
from typing import Dict, List, Optional

from torch import nn

from .inference import init_model

# The package's copy of configs/ (a symlink in a checkout, files in a wheel), as for the
# mmrisfusion:: config scope.
CONFIG_ROOT = Path(__file__).resolve().parents[1] / '.mim' / 'configs'


def _shipped_configs() -> Dict[str, Path]:
    """Config name (file stem) -> path, for every leaf config under ``configs/``."""
    if not CONFIG_ROOT.is_dir():
        raise FileNotFoundError(
            f'the shipped configs are not at {CONFIG_ROOT}: reinstall mmrisfusion (a wheel '
            'carries them there; a checkout links them to configs/)')
    return {path.stem: path for path in sorted(CONFIG_ROOT.glob('**/*.py'))
            if '_base_' not in path.relative_to(CONFIG_ROOT).parts}


def list_models(pattern: str = '*') -> List[str]:
    """Names of the shipped configs, e.g. ``'risfusion_swin-b'``.

    Args:
        pattern (str): A shell-style pattern on the name, e.g. ``'risfusion*'``.
            Defaults to '*'.

    Returns:
        list[str]: The matching names, sorted.
    """
    return sorted(name for name in _shipped_configs() if fnmatch.fnmatch(name, pattern))


def get_model(name: str, checkpoint: Optional[str] = None, device: str = 'cpu',
              cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the model of a shipped config by name, with weights when given.

    Args:
        name (str): A name from :func:`list_models`.
        checkpoint (str, optional): Weights to load (``.pth`` weights-only or
            ``.safetensors``). Defaults to None (random weights; pretrained files named in
            ``init_cfg`` are not read, as in :func:`init_model`).
        device (str): Device to put the model on. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        nn.Module: The model, in eval mode.
    """
    configs = _shipped_configs()
    if name not in configs:
        close = [known for known in configs if name.split('_')[0] in known]
        raise KeyError(f'no shipped config named {name!r}; list_models() gives the names'
                       + (f', e.g. {close}' if close else f': {sorted(configs)}'))
    return init_model(str(configs[name]), checkpoint, device=device, cfg_options=cfg_options)
