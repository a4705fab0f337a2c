"""tools/train.py -> checkpoint -> tools/test.py --out-dir, as a user runs them.

The tiny RIS-FUSION config on a freshly generated 64 px synthetic MM-RIS (8 train, 4 val,
4 test rows), one epoch of two iterations, in fresh processes.
"""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
from mmrisfusion.utils.checkpoint import load_weights_only

REPO_ROOT = Path(__file__).resolve().parents[2]
NUM_ROWS = dict(train=8, val=4, test=4)
# Tiny models run fastest on one thread; several oversubscribe a loaded 2-core machine.
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def data_options(data_root: Path) -> list:
    """``--cfg-options`` that point every split of the tiny config at ``data_root``."""
    return [f'{split}_dataloader.dataset.data_root={data_root}'
            for split in ('train', 'val', 'test')]


def run_tool(args: list, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a command from the repository root; fail with its output on a non-zero exit."""
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=ENV)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with {proc.returncode}:\n'
                    f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic_mmris')
    make_synthetic_splits(str(root), num_rows=NUM_ROWS, size=64, seed=0)
    return root


@pytest.fixture(scope='module')
def config(tiny_ris_config_file) -> str:
    return tiny_ris_config_file


@pytest.fixture(scope='module')
def trained(config, data_root, tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp('train')
    run_tool([sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
              '--cfg-options', 'train_cfg.max_epochs=1', *data_options(data_root)])
    return work_dir


def test_train_writes_checkpoints_and_panels(trained):
    checkpoint = trained / 'epoch_1.pth'
    assert checkpoint.is_file()
    assert (trained / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert (trained / 'best_oIoU_epoch_1.pth').is_file(), 'the best checkpoint by oIoU'
    meta = load_weights_only(str(checkpoint))['meta']
    assert meta['epoch'] == 1 and meta['iter'] == 2  # 8 rows / batch 4
    # The default RISVisualizationHook recorded max_samples=4 panels of the validation.
    panels = sorted(p.name for p in trained.glob('*/vis_data/vis_image/*.png'))
    assert len(panels) == 4, panels
    assert all(p.startswith(f'val_{k}_') and p.endswith('_2.png')  # step = iteration 2
               for k, p in enumerate(panels)), panels


def test_test_writes_results(config, trained, data_root, tmp_path):
    out_dir = tmp_path / 'results'
    run_tool([sys.executable, 'tools/test.py', config, str(trained / 'epoch_1.pth'),
              '--out-dir', str(out_dir), '--panels', '--work-dir', str(tmp_path / 'work'),
              '--cfg-options', *data_options(data_root)])
    samples = json.loads((out_dir / 'samples.json').read_text())
    assert len(samples) == NUM_ROWS['test'] and all(s['text'] for s in samples)
    stems = sorted(f"{s['stem']}.png" for s in samples)
    for sub in ('fused', 'masks', 'overlays', 'gt_overlays', 'panels'):
        assert sorted(p.name for p in (out_dir / sub).iterdir()) == stems, sub
    metrics = json.loads((out_dir / 'metrics.json').read_text())
    for key in ('mIoU', 'oIoU'):
        assert any(k.endswith(key) for k in metrics), (key, metrics)
    assert all(isinstance(v, float) for v in metrics.values())


def test_test_with_tta(config, trained, data_root, tmp_path):
    out_dir = tmp_path / 'results'
    run_tool([sys.executable, 'tools/test.py', config, str(trained / 'epoch_1.pth'), '--tta',
              '--out-dir', str(out_dir), '--work-dir', str(tmp_path / 'work'),
              '--cfg-options', *data_options(data_root)])
    samples = json.loads((out_dir / 'samples.json').read_text())
    assert len(samples) == NUM_ROWS['test'] and all(s['text'] for s in samples)
    assert len(list((out_dir / 'masks').iterdir())) == NUM_ROWS['test']
    metrics = json.loads((out_dir / 'metrics.json').read_text())
    assert 0 <= metrics['mIoU'] <= 100


def test_tta_replaces_every_test_pipeline(monkeypatch):
    test = runpy.run_path(str(REPO_ROOT / 'tools' / 'test.py'))
    inner = dict(type='MMRISDataset', pipeline=['plain'])
    cfg = Config(dict(
        model=dict(type='RISFusion'), tta_model=dict(type='RISTTAModel'),
        tta_pipeline=['views'], test_dataloader=dict(dataset=dict(
            type='ConcatDataset',
            datasets=[inner, dict(type='MismatchedTextDataset', dataset=inner)]))))
    test['use_tta'](cfg, 'x.py')
    assert cfg.model == dict(type='RISTTAModel', module=dict(type='RISFusion'))
    first, mismatched = cfg.test_dataloader.dataset.datasets
    assert first.pipeline == ['views'] and mismatched.dataset.pipeline == ['views']
    with pytest.raises(SystemExit, match='x.py has no tta_model and no tta_pipeline'):
        test['use_tta'](Config(dict(model=dict())), 'x.py')
    with pytest.raises(SystemExit, match='no dataset with a pipeline'):
        test['use_tta'](Config(dict(tta_model=dict(), tta_pipeline=[],
                                    test_dataloader=dict(dataset=dict(type='X')))), 'x.py')


def test_amp_flag(monkeypatch):
    """--amp: bfloat16 autocast without a GPU, float16 with the config's loss scale on one."""
    train = runpy.run_path(str(REPO_ROOT / 'tools' / 'train.py'))

    def amp_config(**extra):
        return Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW')),
                           **extra))

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = amp_config()
    train['enable_amp'](cfg)
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    with pytest.raises(SystemExit, match='float16 needs a CUDA GPU'):
        train['enable_amp'](amp_config(), 'float16')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = amp_config(amp_loss_scale=dict(init_scale=2.**15))
    train['enable_amp'](cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == dict(init_scale=2.**15)
    cfg = amp_config()
    train['enable_amp'](cfg)
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = amp_config()
    train['enable_amp'](cfg, 'bfloat16')
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    other = Config(dict(optim_wrapper=dict(type='MyWrapper')))
    with pytest.raises(SystemExit, match="'MyWrapper'"):
        train['enable_amp'](other)


def test_train_flags(config, monkeypatch):
    train = runpy.run_path(str(REPO_ROOT / 'tools' / 'train.py'))

    def build(*argv):
        monkeypatch.setattr(sys, 'argv', ['train.py', config, *argv])
        return train['build_config'](train['parse_args']())

    cfg = build()
    assert cfg.work_dir == 'work_dirs/tiny' and not cfg.resume
    cfg = build('--resume', '--work-dir', 'w')
    assert cfg.resume and cfg.load_from is None and cfg.work_dir == 'w'
    cfg = build('--resume', 'w/epoch_3.pth', '--cfg-options', 'train_cfg.max_epochs=7')
    assert cfg.resume and cfg.load_from == 'w/epoch_3.pth' and cfg.train_cfg.max_epochs == 7


def _run_benchmark(monkeypatch, argv):
    """tools/analysis_tools/benchmark.py in this process (its folder on sys.path, as when run
    as a script)."""
    monkeypatch.setattr(sys, 'argv', ['benchmark.py', *map(str, argv)])
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'tools' / 'analysis_tools'))
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(REPO_ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'),
                       run_name='__main__')
    finally:
        torch.set_num_threads(threads)


def test_benchmark(config, data_root, trained, tmp_path, monkeypatch):
    out = tmp_path / 'bench.json'
    _run_benchmark(monkeypatch, [
        config, '--checkpoint', trained / 'epoch_1.pth', '--iters', '1', '--warmup', '0',
        '--batch-size', '2', '--device', 'cpu', '--threads', '1', '--precision', 'fp32', 'bf16',
        '--profile', '--work-dir', tmp_path / 'work', '--out', out,
        '--cfg-options', *data_options(data_root)])
    report = json.loads(out.read_text())
    assert report['train_batch_size'] == 2 and report['iters'] == 1
    assert report['torch_threads'] == 1 and report['params_m'] > 0
    assert set(report['variants']) == {'fp32', 'bf16'}
    for figures in report['variants'].values():
        for phase in ('inference', 'train'):
            assert 0 < figures[phase]['min_ms'] <= figures[phase]['median_ms']
            assert figures[phase]['samples_per_s'] > 0 and figures[phase]['peak_memory_mib'] > 0
    # bf16 differs from float32, a little
    assert 0 < max(report['max_abs_difference']['bf16'].values()) < 1
    profile = (tmp_path / 'work' / 'profile_current_bf16_train.txt').read_text()
    assert 'Self CPU' in profile and 'train step in bf16' in profile


@pytest.mark.skipif(not (REPO_ROOT / '.git').exists(), reason='needs a git checkout')
def test_benchmark_against_a_revision(tmp_path, monkeypatch):
    """--baseline: the same code at HEAD in workers, random inputs; equal outputs."""
    out = tmp_path / 'bench.json'
    _run_benchmark(monkeypatch, [
        REPO_ROOT / 'tests' / 'configs' / 'risfusion_tiny.py', '--synthetic', '64x64',
        '--batch-size', '1', '--iters', '1', '--warmup', '0', '--threads', '1',
        '--baseline', 'HEAD', '--out', out])
    report = json.loads(out.read_text())
    assert set(report['variants']) == {'fp32', 'baseline HEAD fp32'}
    # HEAD's model code may differ from the working tree's only where tests are edited
    assert max(report['max_abs_difference']['baseline HEAD fp32'].values()) <= 1e-4
