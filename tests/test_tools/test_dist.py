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
import torch
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
# A hook that writes each rank's BatchNorm statistics when validation starts and when
# training ends, imported by the config below through custom_imports.
DUMP_HOOK = '''
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _NormBase

from mmrisfusion.registry import HOOKS


@HOOKS.register_module()
class DumpNormBuffersHook(Hook):

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def _dump(self, runner, when):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        buffers = {f'{name}.{key}': value.clone()
                   for name, module in model.named_modules() if isinstance(module, _NormBase)
                   for key, value in module.named_buffers(recurse=False)}
        torch.save(buffers, f'{self.out_dir}/{when}_rank{get_rank()}.pth')

    def before_val_epoch(self, runner):
        self._dump(runner, f'val{runner.epoch}')

    def after_train(self, runner):
        self._dump(runner, 'end')
'''


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
    """Two ranks, one epoch, the lr scaled to the total batch; ``buffers/`` holds every rank's
    BN statistics at validation and at the end (DumpNormBuffersHook)."""
    work_dir = tmp_path_factory.mktemp('dist_train')
    hook_dir = tmp_path_factory.mktemp('dump_hook')
    (hook_dir / 'dump_norm_buffers.py').write_text(DUMP_HOOK)
    (work_dir / 'buffers').mkdir()
    dump_config = hook_dir / 'tiny_dump.py'
    dump_config.write_text(
        f'_base_ = [{config!r}]\n'
        "custom_imports = dict(imports=['dump_norm_buffers'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='DumpNormBuffersHook', "
        f"out_dir={str(work_dir / 'buffers')!r})]\n")
    env = dict(env, PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join([str(hook_dir), env.get('PYTHONPATH', '')]))
    run(['bash', 'tools/dist_train.sh', str(dump_config), '2', '--work-dir', str(work_dir),
         '--auto-scale-lr', *options(data_root, 'train_cfg.max_epochs=1')], env)
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


def test_auto_scale_lr_follows_the_total_batch(dist_trained):
    """2 processes x batch 4 = 8, half the recipe's base batch of 16: every lr halves."""
    log = next(dist_trained.glob('*/*.log')).read_text()
    assert 'LR is set based on batch size of 16 and the current batch size is 8' in log
    assert 'Scaling the original LR by 0.5' in log
    scalars = [json.loads(line) for line in
               next(dist_trained.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    logged = [entry['lr'] for entry in scalars if 'lr' in entry]
    assert logged and logged[0] == pytest.approx(0.5 * 5e-5)  # the RIS network's 5e-5


def test_ranks_keep_the_same_batchnorm_statistics(dist_trained):
    """Each rank normalises its own batches; the ranks still validate one model and the
    checkpoint holds what they all hold."""
    dumps = dist_trained / 'buffers'
    checkpoint = load_weights_only(str(dist_trained / 'epoch_1.pth'))['state_dict']
    for when in ('val1', 'end'):
        rank0 = load_weights_only(str(dumps / f'{when}_rank0.pth'))
        rank1 = load_weights_only(str(dumps / f'{when}_rank1.pth'))
        assert len(rank0) > 20 and rank0.keys() == rank1.keys()
        differ = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
        assert not differ, f'{when}: {len(differ)} of {len(rank0)} buffers differ: {differ[:3]}'
        assert all(torch.equal(checkpoint[name], rank0[name]) for name in rank0)
    # the statistics were updated by training (not equal merely because never touched)
    assert any(name.endswith('num_batches_tracked') and int(value) > 0
               for name, value in rank0.items())


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


def test_slurm_node_list_never_reaches_a_shell(tmp_path, monkeypatch):
    """SLURM_NODELIST goes to scontrol as one argument: a list with shell syntax in it runs
    nothing and scontrol sees it whole."""
    from mmrisfusion.utils import dist as dist_utils
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    args_file = tmp_path / 'scontrol_args'
    scontrol = bin_dir / 'scontrol'
    scontrol.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {args_file}\n'
                        'echo node-a\necho node-b\n')
    scontrol.chmod(stat.S_IRWXU)
    marker = tmp_path / 'shell_ran'
    nodes = f'node-[a-b]; touch {marker} $(touch {marker})'
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    monkeypatch.setenv('SLURM_NODELIST', nodes)
    for key, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1').items():
        monkeypatch.setenv(key, value)
    for key in ('MASTER_ADDR', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    dist_utils._export_slurm_env()
    assert os.environ['MASTER_ADDR'] == 'node-a'
    assert args_file.read_text().splitlines() == ['show', 'hostnames', nodes]
    assert not marker.exists()
    scontrol.write_text('#!/usr/bin/env bash\nexit 1\n')
    monkeypatch.delenv('MASTER_ADDR')
    with pytest.raises(RuntimeError, match=r"SLURM_NODELIST='node-\[a-b\]; .*MASTER_ADDR"):
        dist_utils._export_slurm_env()
