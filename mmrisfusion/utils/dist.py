"""Launcher set-up shared by ``tools/train.py`` and ``tools/test.py``."""
import atexit
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
        os.environ['MASTER_ADDR'] = _first_slurm_host(os.environ['SLURM_NODELIST'])


def _first_slurm_host(nodes: str) -> str:
    """The first host of a slurm node list (``node-[0-3]``), expanded by ``scontrol``.

    The list goes to ``scontrol`` as one argument, never through a shell.
    """
    try:
        hosts = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True,
                               text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError(f'could not expand SLURM_NODELIST={nodes!r} with `scontrol show '
                           f'hostnames` ({error}); set MASTER_ADDR yourself') from error
    if not hosts:
        raise RuntimeError(f'`scontrol show hostnames {nodes}` named no host; set MASTER_ADDR '
                           'yourself')
    return hosts[0]


def _destroy_process_group() -> None:
    """Tear the process group down while the interpreter is still alive.

    Left to interpreter finalisation, gloo's worker threads can still hold work whose tensors
    need the GIL, and the process aborts on exit (SIGABRT, "terminate called without an
    active exception") after an otherwise successful run.
    """
    if dist.is_initialized():
        dist.destroy_process_group()


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` for ``Runner.from_cfg`` under the given launcher and on this machine.

    Without a GPU the dataloaders do not pin memory (:func:`pin_memory_only_with_gpu`).
    With a GPU, mmengine's own launchers do the work, with the config's backend (NCCL).
    Without one, mmengine's launchers call ``torch.cuda.set_device`` and fail
    (docs/environment.md#distributed-training-on-cpu), so we initialise a gloo process
    group ourselves (the Runner then skips its own initialisation) and wrap the model in DDP
    without device ids. SyncBN does not run on CPU: CPU configs must use BN, whose statistics
    ``BroadcastBuffersHook`` (a default hook of ``configs/_base_/default_runtime.py``) keeps
    equal on every rank.

    Args:
        cfg (Config): The config to modify in place.
        launcher (str): One of 'none', 'pytorch' (torchrun) or 'slurm'.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    cfg.launcher = launcher
    pin_memory_only_with_gpu(cfg)
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'slurm':
        _export_slurm_env()
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', init_method='env://')
        atexit.register(_destroy_process_group)
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'


def pin_memory_only_with_gpu(cfg: Config) -> None:
    """Switch the dataloaders' ``pin_memory`` off on a machine without a GPU.

    The shipped configs pin the batches for a non-blocking copy to the GPU; without one,
    pinning has no use and torch warns at every epoch.

    Args:
        cfg (Config): The config to modify in place.
    """
    if torch.cuda.is_available():
        return
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and loader.get('pin_memory'):
            loader['pin_memory'] = False
