from .checkpoint import (
    allow_mmengine_checkpoint_types,
    load_weights_only,
    mmengine_checkpoint_types,
    save_weights,
)
from .dist import setup_launcher
from .setup_env import register_all_modules, register_config_scope

__all__ = ['allow_mmengine_checkpoint_types', 'load_weights_only',
           'mmengine_checkpoint_types', 'register_all_modules', 'register_config_scope',
           'save_weights', 'setup_launcher']
