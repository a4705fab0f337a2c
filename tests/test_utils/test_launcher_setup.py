"""setup_launcher adapts a config to the machine: backend and pinned memory by device."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmrisfusion.utils import dist as dist_utils
from mmrisfusion.utils import setup_launcher

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ['tests/configs/risfusion_tiny.py', 'tests/configs/ldfusion_tiny.py',
           'configs/risfusion/risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py']


@pytest.mark.parametrize('config', CONFIGS)
@pytest.mark.parametrize('gpu', [False, True])
def test_backend_and_pinned_memory_follow_the_device(config, gpu, monkeypatch):
    """The demo and tiny configs name no backend: NCCL (the runtime default) on GPUs, gloo
    without; the dataloaders pin memory only where a GPU can use it."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)  # no process group
    cfg = Config.fromfile(str(REPO_ROOT / config))
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    pinned = [key for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
              if cfg[key].get('pin_memory')]
    assert pinned == ['train_dataloader', 'val_dataloader', 'test_dataloader']
    setup_launcher(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == ('nccl' if gpu else 'gloo')
    assert all(cfg[key].pin_memory is gpu for key in pinned)
    if not gpu:  # our own DDP wrapper, without find_unused_parameters
        assert cfg.model_wrapper_cfg['device_ids'] is None
        assert cfg.model_wrapper_cfg['find_unused_parameters'] is False


def test_pin_memory_leaves_other_settings(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(train_dataloader=dict(pin_memory=True, batch_size=2),
                      val_dataloader=dict(batch_size=1), test_dataloader=None))
    dist_utils.pin_memory_only_with_gpu(cfg)
    assert cfg.train_dataloader == dict(pin_memory=False, batch_size=2)
    assert cfg.val_dataloader == dict(batch_size=1)
