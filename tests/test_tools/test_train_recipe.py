"""The run settings of the published recipe as tools/train.py applies them: the seed, the
learning rate that follows the total batch, SyncBN, and the weights a config starts from.

(The two-process run that logs the scaled learning rate is in test_dist.py.)
"""
import runpy
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def train_tool():
    return runpy.run_path(str(REPO_ROOT / 'tools' / 'train.py'))


def _build(train_tool, monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', ['train.py', *argv])
    return train_tool['build_config'](train_tool['parse_args']())


def test_auto_scale_lr_flag(train_tool, tiny_ris_config_file, monkeypatch, tmp_path):
    assert not _build(train_tool, monkeypatch, tiny_ris_config_file).auto_scale_lr.enable
    cfg = _build(train_tool, monkeypatch, tiny_ris_config_file, '--auto-scale-lr')
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    bare = tmp_path / 'bare.py'
    bare.write_text(f"_base_ = ['{tiny_ris_config_file}']\nauto_scale_lr = None\n")
    with pytest.raises(SystemExit, match='auto_scale_lr.base_batch_size'):
        _build(train_tool, monkeypatch, str(bare), '--auto-scale-lr')


def test_missing_load_from_is_named_before_anything_is_built(train_tool, tmp_path,
                                                             monkeypatch):
    lavt_init = str(REPO_ROOT / 'configs' / 'risfusion' / (
        'risfusion_swin-b_bert_1xb16-lavt-refcocoplus-init-10e_mm-ris-480x480.py'))
    cfg = _build(train_tool, monkeypatch, lavt_init)
    with pytest.raises(SystemExit, match='load_from: data/pretrained/lavt_one_swin-b_'
                       'refcocoplus_mmrisfusion.pth does not exist.*how to make it'):
        train_tool['check_load_from'](cfg)
    assert _build(train_tool, monkeypatch, lavt_init, '--resume').load_from is None
    missing = str(tmp_path / 'lavt_init.pth')
    with pytest.raises(SystemExit, match=f'load_from: {missing} does not exist'):
        train_tool['check_load_from'](Config(dict(load_from=missing, resume=False)))
    train_tool['check_load_from'](Config(dict(load_from=missing, resume=True)))  # resumes
    train_tool['check_load_from'](Config(dict(load_from=None)))


def test_syncbn_training_is_refused_on_the_cpu(train_tool, monkeypatch):
    """torch's SyncBatchNorm needs GPU tensors when it trains under DDP."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(sync_bn='torch'))
    with pytest.raises(SystemExit, match='sync_bn=None'):
        train_tool['check_sync_bn'](cfg, 'pytorch')
    train_tool['check_sync_bn'](cfg, 'none')  # one process: mmengine reverts SyncBN to BN
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    train_tool['check_sync_bn'](cfg, 'pytorch')


def _first_losses(config, data_root, work_dir, seed):
    cfg = Config.fromfile(config)
    cfg.train_dataloader.dataset.data_root = str(data_root)
    # 8 rows, batch 4: 10 iterations in 5 epochs; no validation, no checkpoint.
    cfg.merge_from_dict({'train_cfg.max_epochs': 5, 'default_hooks.logger.interval': 1,
                         'default_hooks.checkpoint.interval': 100,
                         'default_hooks.checkpoint.save_last': False})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = work_dir.name
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.message_hub.get_scalar('train/loss').data[0].tolist()


def test_seeded_runs_repeat_their_first_10_losses(tiny_ris_config_file, tmp_path,
                                                   monkeypatch):
    """The tiny config inherits the published recipe's runtime, seed included."""
    # The Runner logs and saves the config text, which yapf formats in seconds per call:
    # not what this test is about.
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: '# (not formatted)'))
    assert Config.fromfile(tiny_ris_config_file).randomness.seed is not None
    (tmp_path / 'data').mkdir()
    make_synthetic_splits(str(tmp_path / 'data'), num_rows=dict(train=8, val=4), size=64,
                          seed=0)
    seed = Config.fromfile(tiny_ris_config_file).randomness.seed
    runs = [_first_losses(tiny_ris_config_file, tmp_path / 'data', tmp_path / name, seed)
            for name in ('run0', 'run1')]
    assert len(runs[0]) == 10
    assert runs[0] == runs[1]
    # What the seed buys: without it, mmengine draws one and the losses differ.
    unseeded = _first_losses(tiny_ris_config_file, tmp_path / 'data', tmp_path / 'run2', None)
    assert unseeded != runs[0]
