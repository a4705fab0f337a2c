import datetime
import warnings

from mmengine import DefaultScope

# mmengine resolves `_base_ = ['mmrisfusion::risfusion/x.py']` to
# `dirname(<module>.__file__)/.mim/configs/risfusion/x.py`, where <module> is what this names.
# It is a module inside the package, not the distribution name 'mmrisfusion', on purpose:
# mmengine 0.10's `get_installed_path` builds the path from the distribution's location,
# which for a PEP 660 editable install (`pip install -e .`) is site-packages, where there is
# no mmrisfusion folder. For a name that is no distribution it falls back to
# `importlib.util.find_spec`, which finds the real folder for editable installs, wheels and
# source checkouts alike.
CONFIG_SCOPE_MODULE = 'mmrisfusion.registry'


def register_config_scope() -> None:
    """Let configs inherit ours through ``mmrisfusion::`` (``mmdet::``-style bases).

    mmengine only accepts ``<scope>::`` for the scopes in its ``MODULE2PACKAGE``, a plain dict
    with no registration API; OpenMMLab's own packages are listed there by mmengine itself.
    Adding our scope is the only way in, so ``import mmrisfusion`` does it once. The configs
    are ``mmrisfusion/.mim/configs``: a symlink to the repository's ``configs/`` in a checkout,
    copied into wheels (``pyproject.toml``).
    """
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmrisfusion', CONFIG_SCOPE_MODULE)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers a type, ours and mmseg's.

    Registry ``locations`` already make lookups in a fresh process work; this is for code
    that wants the registries filled up front (listing types, building without a Runner).

    Args:
        init_default_scope (bool): Whether to make ``mmrisfusion`` the current default scope.
            Defaults to True.
    """
    from mmseg.utils import register_all_modules as register_mmseg_modules

    import mmrisfusion.datasets  # noqa: F401,F403
    import mmrisfusion.engine  # noqa: F401,F403
    import mmrisfusion.evaluation  # noqa: F401,F403
    import mmrisfusion.models  # noqa: F401,F403
    import mmrisfusion.visualization  # noqa: F401,F403
    register_mmseg_modules(init_default_scope=False)

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmrisfusion', scope_name='mmrisfusion')
    elif current.scope_name != 'mmrisfusion':
        warnings.warn(f'The current default scope "{current.scope_name}" is not '
                      '"mmrisfusion"; register_all_modules makes a new one named '
                      '"mmrisfusion-<timestamp>" and switches to it.')
        name = f'mmrisfusion-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='mmrisfusion')
