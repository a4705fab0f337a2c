"""A killed and resumed run of the tiny config equals the uninterrupted one, bit for bit.

Dropout and drop-path are on (the tiny config's BERT and Swin) and the training pipeline flips
at random, so every iteration draws random numbers in the model and in the data. A run is
"killed" by a hook that raises right after the checkpoint of a given iteration; a new Runner
then resumes in the same process, after the global generators have been scrambled, so
nothing but the checkpoint can carry the state over.
"""
import json
import random
import types
from pathlib import Path

import mmengine.runner.loops
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
from mmrisfusion.registry import HOOKS
from mmrisfusion.utils.checkpoint import load_weights_only

NUM_ROWS = dict(train=8, val=4, test=4)


class Killed(Exception):
    """What the killing hook raises: the run stops as if the process had died."""


@HOOKS.register_module(force=True)
class KillAfterIterHook(Hook):
    """Stops the run after iteration ``after_iter``, its checkpoints written."""

    priority = 'LOWEST'

    def __init__(self, after_iter: int) -> None:
        self.after_iter = after_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.after_iter:
            raise Killed(f'killed after iteration {self.after_iter}')


@HOOKS.register_module(force=True)
class RecordLossesHook(Hook):
    """Keeps every iteration's losses, by run name."""

    records: dict = {}

    def __init__(self, run: str) -> None:
        self.run = run

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.records.setdefault(self.run, {})[runner.iter + 1] = {
            key: float(value) for key, value in outputs.items()}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic_mmris')
    make_synthetic_splits(str(root), num_rows=NUM_ROWS, size=64, seed=3)
    return root


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """Skip what costs seconds and is not tested: mmengine's iteration loop sleeps 2 s at
    every pass over the data, and the Runner formats the config with yapf for the log and
    every checkpoint (seconds each on a loaded machine)."""
    monkeypatch.setattr(mmengine.runner.loops, 'time', types.SimpleNamespace(
        sleep=lambda seconds: None))
    monkeypatch.setattr(Config, 'pretty_text', property(lambda cfg: repr(cfg.to_dict())))


def make_cfg(config_file: str, data_root: Path, work_dir: Path, run: str, loop: str,
             kill_after: int = None, resume_from: str = None) -> Config:
    cfg = Config.fromfile(config_file)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(data_root)
    cfg.train_dataloader.dataset.pipeline.insert(
        2, dict(type='RISRandomFlip', prob=0.5, direction='horizontal'))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = run
    cfg.visualizer.name = run  # mmengine keeps one visualiser per name and process
    cfg.randomness = dict(seed=0)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.visualization = dict(type='RISVisualizationHook', draw=False)
    cfg.default_hooks.checkpoint.save_best = None
    cfg.custom_hooks = [dict(type='RecordLossesHook', run=run)]
    if loop == 'iter':
        cfg.train_dataloader.batch_size = 2  # 4 iterations a pass, a new pass at 5
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=6, val_interval=3)
        cfg.param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=6,
                                    by_epoch=False)]
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                            interval=2, max_keep_ckpts=-1)
        cfg.log_processor = dict(by_epoch=False)
    if kill_after is not None:
        if loop == 'epoch':  # epoch checkpoints as configured, and iteration ones beside them
            cfg.custom_hooks.append(dict(type='CheckpointHook', by_epoch=False, interval=1))
        cfg.custom_hooks.append(dict(type='KillAfterIterHook', after_iter=kill_after))
    if resume_from is not None:
        cfg.resume = True
        cfg.load_from = resume_from
        cfg.randomness = dict(seed=None)  # the seed comes from the checkpoint
    return cfg


def scramble_generators() -> None:
    torch.manual_seed(12345)
    np.random.seed(12345)
    random.seed(12345)


def logged_losses(work_dir: Path) -> dict:
    """Step -> the loss values the LoggerHook wrote (every run folder of the work dir)."""
    logged = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            losses = {k: v for k, v in entry.items() if k.startswith('loss') or k == 'lr'}
            if losses and 'step' in entry:
                logged[entry['step']] = losses
    return logged


def assert_identical(actual, expected, where: str) -> None:
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_identical(actual[key], expected[key], f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_identical(a, e, f'{where}[{i}]')
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(actual, expected), where
    else:
        assert actual == expected, where


def assert_same_training(resumed_dir: Path, uninterrupted_dir: Path, checkpoint: str,
                         resumed_run: str, from_iter: int) -> None:
    """Weights, optimizer and schedulers at the end, and the losses after the resume."""
    resumed = load_weights_only(str(resumed_dir / checkpoint))
    expected = load_weights_only(str(uninterrupted_dir / checkpoint))
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_identical(resumed[key], expected[key], key)
    recorded = RecordLossesHook.records
    uninterrupted = recorded[uninterrupted_dir.name]
    after = {it: losses for it, losses in uninterrupted.items() if it > from_iter}
    assert after and recorded[resumed_run] == after
    logged = logged_losses(uninterrupted_dir)
    resumed_logged = logged_losses(resumed_dir)
    assert {step: logged[step] for step in after} == {
        step: resumed_logged[step] for step in after}


@pytest.mark.parametrize('loop', ['epoch', 'iter'])
def test_killed_and_resumed_run_equals_the_uninterrupted_one(
        loop, tiny_ris_config_file, data_root, tmp_path):
    uninterrupted = tmp_path / f'{loop}-uninterrupted'
    Runner.from_cfg(make_cfg(tiny_ris_config_file, data_root, uninterrupted, uninterrupted.name,
                             loop)).train()

    killed = tmp_path / f'{loop}-killed'
    with pytest.raises(Killed):
        Runner.from_cfg(make_cfg(tiny_ris_config_file, data_root, killed, killed.name, loop,
                                 kill_after=3 if loop == 'epoch' else 5)).train()
    # epoch loop: killed in epoch 2, resumed from epoch 1; iteration loop: from iteration 4
    checkpoint, from_iter, last = (('epoch_1.pth', 2, 'epoch_2.pth') if loop == 'epoch'
                                   else ('iter_4.pth', 4, 'iter_6.pth'))
    scramble_generators()
    Runner.from_cfg(make_cfg(tiny_ris_config_file, data_root, killed, f'{loop}-resumed', loop,
                             resume_from=str(killed / checkpoint))).train()
    assert_same_training(killed, uninterrupted, last, f'{loop}-resumed', from_iter)

    if loop == 'epoch':
        # an iteration checkpoint in the middle of an epoch cannot resume the epoch loop
        runner = Runner.from_cfg(make_cfg(tiny_ris_config_file, data_root, killed,
                                          'epoch-mid', loop, resume_from=str(killed /
                                                                             'iter_3.pth')))
        with pytest.raises(RuntimeError, match=r'iter_3\.pth was saved at iteration 3, in '
                           r'the middle of epoch 2 .* epoch 1 or of iteration 2'):
            runner.train()
