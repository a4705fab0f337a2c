"""Find and build the shipped configs by name (as mmpretrain's ``list_models``/``get_model``)."""
import fnmatch
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional

from torch import nn

from .inference import init_model

# The package's copy of configs/ (a symlink in a checkout, files in a wheel), as for the
# mmrisfusion:: config scope.
CONFIG_ROOT = Path(__file__).resolve().parents[1] / '.mim' / 'configs'

# mmseg's naming scheme, {algorithm}_{backbone}_{text}_{NxB}-{schedule}_{dataset}-{HxW}, with
# mmseg's optional training settings between NxB and the schedule (e.g. '1xb16-nodecay-10e')
# and its optional test dataset last (trained on one dataset, tested on another), e.g.
# 'risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480'. NxB is GPUs x batch per GPU; the
# schedule is epochs ('10e') or thousands of iterations ('1k'); HxW is the training input.
_PART = r'[a-z0-9]+(?:-[a-z0-9]+)*'
NAME_PATTERN = re.compile(
    rf'(?P<algorithm>{_PART})_(?P<backbone>{_PART})_(?P<text>{_PART})'
    r'_(?P<gpus>\d+)xb(?P<batch>\d+)(?P<settings>(?:-[a-z][a-z0-9]*)*)-(?P<schedule>\d+(?:\.\d+)?[ek])'
    rf'_(?P<dataset>{_PART})-(?P<size>\d+x\d+)(?:_(?P<test_dataset>{_PART}))?')
# Short names kept beside the full ones: get_model takes them, list_models does not list them.
SHORT_NAMES = {'risfusion_swin-b': 'risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480'}
# Old names of renamed configs -> the new ones. Each old name stays for one release as a
# config file at its old path that only inherits the new one (tools/train.py and
# tools/test.py keep working), and get_model takes it with a DeprecationWarning.
DEPRECATED_NAMES = {
    'risfusion_swin-b_bert_10e_mm-ris-480': 'risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480',
    'risfusion_swin-b_bert-10l_10e-nodecay_mm-ris-480':
        'risfusion_swin-b_bert-10l_1xb16-nodecay-10e_mm-ris-480x480',
    'risfusion_clip-loss_swin-b_bert_10e_mm-ris-480':
        'risfusion_swin-b_bert_1xb16-clip-loss-10e_mm-ris-480x480',
    'ldfusion_munit_100e_roadscene-224': 'ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno',
    'risfusion_swin-mini_minilm_1000it_synthetic-mmris-128':
        'risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128',
}
DEPRECATED_REMOVED_IN = '0.3.0'


def _shipped_configs() -> Dict[str, Path]:
    """Config name (file stem) -> path, for every leaf config under ``configs/``."""
    if not CONFIG_ROOT.is_dir():
        raise FileNotFoundError(
            f'the shipped configs are not at {CONFIG_ROOT}: reinstall mmrisfusion (a wheel '
            'carries them there; a checkout links them to configs/)')
    return {path.stem: path for path in sorted(CONFIG_ROOT.glob('**/*.py'))
            if '_base_' not in path.relative_to(CONFIG_ROOT).parts}


def _deprecation_message(old: str) -> str:
    return (f'the config name {old!r} is deprecated and goes away in mmrisfusion '
            f'{DEPRECATED_REMOVED_IN}: use {DEPRECATED_NAMES[old]!r}')


def list_models(pattern: str = '*') -> List[str]:
    """Names of the shipped configs, e.g. ``'risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480'``.

    Short names and deprecated old names are not listed (:func:`get_model` takes them).

    Args:
        pattern (str): A shell-style pattern on the name, e.g. ``'risfusion*'``.
            Defaults to '*'.

    Returns:
        list[str]: The matching names, sorted.
    """
    return sorted(name for name in _shipped_configs()
                  if name not in SHORT_NAMES and name not in DEPRECATED_NAMES
                  and fnmatch.fnmatch(name, pattern))


def warn_if_deprecated(config: str) -> None:
    """Warn (``DeprecationWarning``) when ``config`` is a shipped deprecated alias.

    For the tools that take a config path: the alias works, the warning names the new config.

    Args:
        config (str): Path of a config file.
    """
    path = Path(config).resolve()
    if path.stem not in DEPRECATED_NAMES:
        return
    configs = _shipped_configs()
    if path == configs[path.stem].resolve():
        new_path = configs[DEPRECATED_NAMES[path.stem]].resolve()
        warnings.warn(f'{_deprecation_message(path.stem)} ({new_path})', DeprecationWarning,
                      stacklevel=2)


def get_model(name: str, checkpoint: Optional[str] = None, device: str = 'cpu',
              cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the model of a shipped config by name, with weights when given.

    Args:
        name (str): A name from :func:`list_models`, a short name (``'risfusion_swin-b'``) or,
            with a ``DeprecationWarning``, an old name of a renamed config.
        checkpoint (str, optional): Weights to load (``.pth`` weights-only or
            ``.safetensors``). Defaults to None (random weights; pretrained files named in
            ``init_cfg`` are not read, as in :func:`init_model`).
        device (str): Device to put the model on. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        nn.Module: The model, in eval mode.
    """
    if name in DEPRECATED_NAMES:
        warnings.warn(_deprecation_message(name), DeprecationWarning, stacklevel=2)
        name = DEPRECATED_NAMES[name]
    name = SHORT_NAMES.get(name, name)
    configs = _shipped_configs()
    if name not in configs:
        known = list_models()
        close = [model for model in known if name.split('_')[0] in model]
        raise KeyError(f'no shipped config named {name!r}; list_models() gives the names'
                       + (f', e.g. {close}' if close else f': {known}'))
    return init_model(str(configs[name]), checkpoint, device=device, cfg_options=cfg_options)
