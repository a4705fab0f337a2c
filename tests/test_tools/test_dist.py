"""Two-process CPU training and testing with torchrun (gloo), and the slurm path.

``tools/dist_train.sh`` / ``dist_test.sh`` start two processes on this CPU-only machine;
``mmrisfusion.utils.setup_launcher`` must bring up gloo without any CUDA call. The slurm
scripts run under a stand-in ``srun`` that starts the tasks with slurm's variables, so the
slurm launcher path (``SLURM_PROCID`` -> ``RANK``, ``scontrol`` -> ``MASTER_ADDR``) runs too.
"""
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
from mmrisfusion.utils.checkpoint import load_weights_only

REPO_ROOT = Path(__file__).resolve().parents[2]
NUM_ROWS = dict(train=8, val=4, test=6)


FAKE_SRUN = r'''#!/usr/bin/env bash
# Stand-in for slurm's srun on one machine: start --ntasks copies of the command with the
# variables slurm sets, skipping the scheduling options.
ntasks=1
while [ $# -gt 0 ]; do
    case "$1" in
        --ntasks=*) ntasks=${1#--ntasks=}; shift ;;
        -p|-J|-n|-N|-c) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
pids=()
for ((i = 0; i < ntasks; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$ntasks SLURM_NODELIST=node-[0] "$@" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
'''
FAKE_SCONTROL = '#!/usr/bin/env bash\necho 127.0.0.1\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(args: list, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with {proc.returncode}:\n'
                    f'{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}')
    return proc


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic_mmris')
    make_synthetic_splits(str(root), num_rows=NUM_ROWS, size=64, seed=1)
    return root


@pytest.fixture(scope='module')
def env() -> dict:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    env.pop('CUDA_VISIBLE_DEVICES', None)
    return env


def options(data_root: Path, *extra: str) -> list:
    return ['--cfg-options', *extra, *[f'{split}_dataloader.dataset.data_root={data_root}'
                                       for split in ('train', 'val', 'test')]]


@pytest.fixture(scope='module')
def config(tiny_ris_config_file) -> str:
    return tiny_ris_config_file


@pytest.fixture(scope='module')
def dist_trained(config, data_root, env, tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp('dist_train')
    run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir),
         *options(data_root, 'train_cfg.max_epochs=1')], dict(env, PORT=str(free_port())))
    return work_dir


def test_dist_train_splits_data_over_two_ranks(config, dist_trained):
    checkpoint = dist_trained / 'epoch_1.pth'
    assert checkpoint.is_file()
    meta = load_weights_only(str(checkpoint))['meta']
    # 8 rows, batch 4 per rank, 2 ranks: one iteration per epoch (two on one process).
    assert meta['epoch'] == 1 and meta['iter'] == 1
    log = next(dist_trained.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    # DDP without find_unused_parameters: every trainable parameter gets a gradient.
    assert not Config.fromfile(config).get('find_unused_parameters', False)


def test_dist_train_with_activation_checkpointing(config, data_root, env, tmp_path):
    """with_cp in the Swin blocks, the PWAMs and the fuser under DDP. mmseg's reentrant
    checkpointing crashed DDP at the first iteration; a second iteration also fails if a
    trainable parameter got no gradient in the first."""
    run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(tmp_path),
         *options(data_root, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
                  'train_dataloader.batch_size=1', 'train_dataloader.dataset.indices=6',
                  'model.backbone.with_cp=True', 'model.fuser.with_cp=True')],
        dict(env, PORT=str(free_port())))
    meta = load_weights_only(str(tmp_path / 'epoch_1.pth'))['meta']
    assert meta['iter'] == 3  # 6 rows, batch 1 per rank, 2 ranks
    assert 'with_cp=True' in next(tmp_path.glob('*/*.log')).read_text()


def test_dist_test_gathers_every_sample(config, dist_trained, data_root, env, tmp_path):
    out_dir = tmp_path / 'results'
    run(['bash', 'tools/dist_test.sh', config, str(dist_trained / 'epoch_1.pth'), '2',
         '--out-dir', str(out_dir), '--work-dir', str(tmp_path / 'work'), *options(data_root)],
        dict(env, PORT=str(free_port())))
    samples = json.loads((out_dir / 'samples.json').read_text())
    assert sorted(s['sample_idx'] for s in samples) == list(range(NUM_ROWS['test']))
    assert len(list((out_dir / 'masks').iterdir())) == NUM_ROWS['test']
    metrics = json.loads((out_dir / 'metrics.json').read_text())
    assert any(k.endswith('mIoU') for k in metrics)


def test_slurm_test_on_cpu(config, dist_trained, data_root, env, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    slurm_env = dict(env, PATH=f'{bin_dir}:{env["PATH"]}', GPUS='2', GPUS_PER_NODE='0',
                     TASKS_PER_NODE='2', MASTER_PORT=str(free_port()))
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR'):
        slurm_env.pop(key, None)
    out_dir = tmp_path / 'results'
    proc = run(['bash', 'tools/slurm_test.sh', 'cpu', 'mmrisfusion-test', config,
                str(dist_trained / 'epoch_1.pth'), '--out-dir', str(out_dir),
                '--work-dir', str(tmp_path / 'work'), *options(data_root)], slurm_env)
    samples = json.loads((out_dir / 'samples.json').read_text())
    assert sorted(s['sample_idx'] for s in samples) == list(range(NUM_ROWS['test']))
    assert 'Distributed launcher: slurm' in proc.stdout + proc.stderr
