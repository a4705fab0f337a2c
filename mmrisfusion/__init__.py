"""mmrisfusion: text-driven infrared-visible fusion and referring segmentation."""
import warnings

from .utils.checkpoint import use_weights_only_checkpoints
from .utils.setup_env import register_config_scope
from .version import __version__

# The OpenMMLab packages whose versions matter most; their ranges are the package's own
# requirements (requirements/*.txt, through the installed metadata), so they live in one place.
_CHECKED_DISTRIBUTIONS = ('mmcv', 'mmengine', 'mmsegmentation')


def _check_versions() -> None:
    """Warn, never fail, when mmcv, mmengine or mmseg are outside the required ranges.

    A hard assert at import (as mmseg does for mmcv) stops a user on a neighbouring version
    from even trying; a warning says the same and lets them
    (docs/contributing.md#pains-not-to-repeat).
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    try:
        requirements = [Requirement(line) for line in metadata.requires('mmrisfusion') or []]
    except metadata.PackageNotFoundError:
        return  # a source tree that was never installed: no ranges to compare with
    for requirement in requirements:
        if requirement.name not in _CHECKED_DISTRIBUTIONS:
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            warnings.warn(f'mmrisfusion needs {requirement.name}, which is not installed: run '
                          f'`make setup` or install {requirement.name}{requirement.specifier}.')
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            warnings.warn(f'mmrisfusion was tested with {requirement.name}'
                          f'{requirement.specifier}; found {requirement.name} {version}.')


_check_versions()
# mmengine's Runner (resume, load_from) loads checkpoints weights only, whatever the
# environment says (utils/checkpoint.py says why).
use_weights_only_checkpoints()
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
