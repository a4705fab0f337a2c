"""mmrisfusion: text-driven infrared-visible fusion and referring segmentation."""
import warnings

from .version import __version__
from .utils.checkpoint import allow_mmengine_checkpoint_types
from .utils.setup_env import register_config_scope

# Ranges this release was tested with; outside them we warn instead of refusing to import,
# so a user on a neighbouring version can still try (no hard asserts at import:
# docs/contributing.md#pains-not-to-repeat).
_TESTED_RANGES = {
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmengine': ('0.10.0', '0.11.0'),
    'mmseg': ('1.2.0', '1.3.0'),
}


def _check_versions() -> None:
    from importlib import import_module

    from mmengine.utils import digit_version
    for name, (low, high) in _TESTED_RANGES.items():
        try:
            version = import_module(name).__version__
        except ImportError:
            warnings.warn(f'mmrisfusion needs {name}, which is not installed: run `make setup` '
                          f'or install {name}>={low},<{high}.')
            continue
        if not digit_version(low) <= digit_version(version) < digit_version(high):
            warnings.warn(f'mmrisfusion was tested with {low} <= {name} < {high}; '
                          f'found {name} {version}.')


_check_versions()
allow_mmengine_checkpoint_types()
# `_base_ = ['mmrisfusion::...']` in users' configs (utils/setup_env.py says why here).
register_config_scope()


def __getattr__(name: str):
    # list_models/get_model at the top level without importing the models (and mmseg's
    # seconds of imports) on every `import mmrisfusion`.
    if name in ('list_models', 'get_model'):
        from .apis import model_zoo
        return getattr(model_zoo, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['__version__', 'get_model', 'list_models']
