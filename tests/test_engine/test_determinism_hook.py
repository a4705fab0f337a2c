"""randomness=dict(deterministic=True) gives a mode that runs: warn-only deterministic ops."""
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner

from mmrisfusion.engine.hooks import DeterminismHook


@pytest.fixture()
def restore_determinism():
    """The process-wide switches the Runner and the hook set, as they were."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get('CUBLAS_WORKSPACE_CONFIG'))
    os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
    if saved[4] is None:
        os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)
    else:
        os.environ['CUBLAS_WORKSPACE_CONFIG'] = saved[4]


def _unpool():
    """An op without a deterministic kernel on this CPU (torch's list; on GPUs the backward
    of bilinear interpolate, grid_sample, ReflectionPad2d and AdaptiveAvgPool2d)."""
    pooled, indices = F.max_pool2d(torch.randn(1, 1, 4, 4), 2, return_indices=True)
    return F.max_unpool2d(pooled, indices, 2)


def _runner(config, work_dir, **randomness):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.randomness.update(randomness)
    # Visualisers are process-wide by name: leave the config's name to the tests that draw.
    cfg.visualizer.name = 'test_determinism_hook'
    return Runner.from_cfg(cfg)


def test_deterministic_runs_warn_instead_of_raising(tiny_ris_config_file, tmp_path,
                                                   restore_determinism):
    runner = _runner(tiny_ris_config_file, tmp_path, seed=0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()  # mmengine's strict mode ...
    with pytest.raises(RuntimeError, match='does not have a deterministic implementation'):
        _unpool()
    runner.call_hook('before_run')  # ... becomes warn-only (DeterminismHook, runtime config)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    with pytest.warns(UserWarning, match='does not have a deterministic implementation'):
        _unpool()


def test_nothing_changes_by_default(tiny_ris_config_file, restore_determinism):
    randomness = Config.fromfile(tiny_ris_config_file).randomness
    assert randomness == dict(seed=0, diff_rank_seed=True, deterministic=False)
    torch.use_deterministic_algorithms(False)
    DeterminismHook().before_run(SimpleNamespace(deterministic=False))
    assert not torch.are_deterministic_algorithms_enabled()
    assert 'CUBLAS_WORKSPACE_CONFIG' not in os.environ
