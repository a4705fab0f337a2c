"""Resuming a Runner under weights-only loading, and weights-only staying on."""
import copy
import os
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

from mmrisfusion.registry import MODELS
from mmrisfusion.utils import load_weights_only


@MODELS.register_module(force=True)
class ToyResumeModel(BaseModel):
    """A linear regressor: the smallest model with optimizer state worth checking."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        pred = self.linear(inputs)
        if mode == 'loss':
            return dict(loss_mse=torch.nn.functional.mse_loss(pred, data_samples))
        return pred


class ToyDataset(Dataset):

    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        x = torch.randn(4, generator=generator)
        return dict(inputs=x, data_samples=x.sum(dim=0, keepdim=True))


class RecordStateHook(Hook):
    """Records the iteration counter and optimizer state the run starts from."""

    def before_train(self, runner) -> None:
        self.start_iter = runner.iter
        self.start_optimizer = copy.deepcopy(runner.optim_wrapper.state_dict())


def make_runner(work_dir, max_iters, resume_from=None, hooks=()):
    return Runner(
        model=dict(type='ToyResumeModel'),
        work_dir=str(work_dir),
        train_dataloader=DataLoader(ToyDataset(), batch_size=4, shuffle=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-2)),
        param_scheduler=dict(type='PolyLR', power=0.9, eta_min=0, by_epoch=False,
                             end=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=4),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks),
        default_scope='mmrisfusion',
        resume=resume_from is not None,
        load_from=resume_from,
        experiment_name=f'resume-{max_iters}-{resume_from is not None}',
    )


def assert_same_state(actual, expected, where='optimizer'):
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_same_state(actual[key], expected[key], f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_state(a, e, f'{where}[{i}]')
    elif isinstance(expected, torch.Tensor):
        torch.testing.assert_close(actual, expected, msg=where, rtol=0, atol=0)
    else:
        assert actual == expected, where


def test_resume_restores_iteration_and_optimizer(tmp_path):
    make_runner(tmp_path / 'first', max_iters=4).train()
    checkpoint_path = tmp_path / 'first' / 'iter_4.pth'
    saved = load_weights_only(str(checkpoint_path))
    assert saved['meta']['iter'] == 4
    assert saved['optimizer']['state'], 'AdamW saved no moments: nothing to compare'

    recorder = RecordStateHook()
    runner = make_runner(tmp_path / 'second', max_iters=8,
                         resume_from=str(checkpoint_path), hooks=[recorder])
    runner.train()

    assert recorder.start_iter == 4
    assert_same_state(recorder.start_optimizer, saved['optimizer'])
    assert runner.iter == 8
    assert (tmp_path / 'second' / 'iter_8.pth').is_file()


class NotAllowed:
    """A type no allow-list names: loading it must stay refused."""


def test_weights_only_loading_stays_on(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'payload': NotAllowed()}, path)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        load_weights_only(str(path))


class SneakyGetattr:
    """Pickles as ``getattr(HistoryBuffer, '__init__')``: the allowed stand-in must refuse."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_limited_to_history_buffer_methods(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save({'payload': SneakyGetattr()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        load_weights_only(str(path))


class WritesMarker:
    """Pickles as ``open(marker, 'w')``: unpickling it with code execution creates the file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


@pytest.fixture(scope='module')
def crafted_file(tmp_path_factory):
    """A Runner checkpoint whose meta, unpickled with code execution, creates a marker."""
    folder = tmp_path_factory.mktemp('crafted')
    make_runner(folder / 'run', max_iters=4).train()
    checkpoint = load_weights_only(str(folder / 'run' / 'iter_4.pth'))
    checkpoint['meta']['payload'] = WritesMarker(folder / 'code_ran')
    torch.save(checkpoint, folder / 'crafted.pth')
    return folder / 'crafted.pth', folder / 'code_ran'


@pytest.fixture
def crafted_checkpoint(crafted_file, monkeypatch):
    """The crafted checkpoint under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1."""
    path, marker = crafted_file
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    # The environment switches torch's default off: a call without weights_only runs the code.
    with pytest.warns(UserWarning, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        torch.load(path)
    assert marker.is_file()
    marker.unlink()
    return path, marker


@pytest.mark.parametrize('resume', [True, False], ids=['resume', 'load_from'])
def test_runner_loads_checkpoints_weights_only_whatever_the_environment(
        crafted_checkpoint, tmp_path, resume):
    path, marker = crafted_checkpoint
    runner = make_runner(tmp_path / 'second', max_iters=8, resume_from=str(path))
    runner._resume = resume
    with pytest.raises(pickle.UnpicklingError, match=r'crafted\.pth: refused .* io\.open'):
        runner.train()
    assert not marker.exists()


def test_model_checkpoints_load_weights_only_whatever_the_environment(crafted_checkpoint):
    from mmrisfusion.apis import load_model_checkpoint
    path, marker = crafted_checkpoint
    with pytest.raises(RuntimeError, match='could not be loaded with weights only'):
        load_model_checkpoint(ToyResumeModel(), path)
    assert not marker.exists()


def test_mmengine_downloads_are_refused():
    from mmengine.runner.checkpoint import CheckpointLoader
    for url in ('https://example.com/model.pth', 'open-mmlab://resnet50_v1c',
                'torchvision://resnet50'):
        with pytest.raises(ValueError, match='local files only'):
            CheckpointLoader.load_checkpoint(url)


def test_loaders_are_registered_when_mmengine_runner_is_imported_later():
    """``import mmrisfusion`` does not import mmengine.runner (seconds); the weights-only
    loaders are registered as soon as something else does."""
    code = ('import sys, mmrisfusion\n'
            "assert 'mmengine.runner' not in sys.modules\n"
            'from mmengine.runner.checkpoint import CheckpointLoader\n'
            "print(CheckpointLoader._get_checkpoint_loader('a.pth').__name__)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, OMP_NUM_THREADS='1')).stdout
    assert out.split() == ['load_from_local_weights_only']
