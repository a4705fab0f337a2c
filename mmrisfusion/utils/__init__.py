from .checkpoint import (
    allow_mmengine_checkpoint_types,
    load_weights_only,
    mmengine_checkpoint_types,
    register_weights_only_loaders,
    save_weights,
    use_weights_only_checkpoints,
)
from .dist import pin_memory_only_with_gpu, setup_launcher
from .setup_env import register_all_modules, register_config_scope

__all__ = ['allow_mmengine_checkpoint_types', 'load_weights_only',
           'mmengine_checkpoint_types', 'pin_memory_only_with_gpu', 'register_all_modules',
           'register_config_scope', 'register_weights_only_loaders', 'save_weights',
           'setup_launcher', 'use_weights_only_checkpoints']
