"""Launcher set-up shared by ``tools/train.py`` and ``tools/test.py``."""
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config

LAUNCHERS = ('none', 'pytorch', 'slurm')


def _export_slurm_env() -> None:
    """Translate slurm's variables into the ``env://`` ones torch reads."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` for ``Runner.from_cfg`` under the given launcher.

    With a GPU, mmengine's own launchers do the work. Without one, mmengine's launchers call
    ``torch.cuda.set_device`` and fail (docs/environment.md#distributed-training-on-cpu), so
    we initialise a gloo process group ourselves (the Runner then skips its own
    initialisation) and wrap the model in DDP without device ids. SyncBN does not run on CPU:
    CPU configs must use BN.

    Args:
        cfg (Config): The config to modify in place.
        launcher (str): One of 'none', 'pytorch' (torchrun) or 'slurm'.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'slurm':
        _export_slurm_env()
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', init_method='env://')
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
