import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers a type, ours and mmseg's.

    Registry ``locations`` already make lookups in a fresh process work; this is for code
    that wants the registries filled up front (listing types, building without a Runner).

    Args:
        init_default_scope (bool): Whether to make ``mmrisfusion`` the current default scope.
            Defaults to True.
    """
    import mmrisfusion.datasets  # noqa: F401,F403
    import mmrisfusion.engine  # noqa: F401,F403
    import mmrisfusion.evaluation  # noqa: F401,F403
    import mmrisfusion.models  # noqa: F401,F403
    import mmrisfusion.visualization  # noqa: F401,F403
    from mmseg.utils import register_all_modules as register_mmseg_modules
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
