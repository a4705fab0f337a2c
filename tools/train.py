"""Train a model from a config with mmengine's Runner.

Examples:
    python tools/train.py configs/risfusion_swin-b.py --work-dir work_dirs/risfusion
    python tools/train.py CONFIG --resume                  # latest checkpoint of the work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_4000.pth
    bash tools/dist_train.sh CONFIG 8                       # 8 processes with torchrun
    bash tools/dist_train.sh CONFIG 8 --auto-scale-lr       # lr x (8 x batch) / base batch
"""
import argparse
import logging
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmrisfusion.apis.model_zoo import warn_if_deprecated
from mmrisfusion.utils import setup_launcher


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Train a text-driven fusion/RIS model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: '
                        'the config\'s work_dir, else work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume training: from CKPT, or without a value from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: float16 with loss scaling on a GPU, '
                        'bfloat16 autocast without one')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='with --amp, the autocast dtype (default: float16 on a GPU, '
                        'bfloat16 on the CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the total batch (processes x batch '
                        'per process) over the config\'s auto_scale_lr.base_batch_size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100 '
                        'optim_wrapper.optimizer.lr=1e-4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: none (one process), pytorch (torchrun) or slurm')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Switch the config's optimizer wrapper to mixed precision.

    float16 (the default on a GPU) uses mmengine's ``AmpOptimWrapper`` with the config's
    ``amp_loss_scale`` (the initial loss scale, set per model where 2^16 overflows), bfloat16
    (the default without a GPU, where mmengine's wrapper cannot run) our
    ``AutocastOptimWrapper``, which needs no loss scaler.

    Args:
        cfg (Config): The config, changed in place.
        dtype (str, optional): 'float16' or 'bfloat16'. Defaults to None: float16 on a GPU,
            bfloat16 without one.
    """
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
        print_log('Mixed precision is already enabled in the config.', logger='current',
                  level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise SystemExit(f'--amp replaces optim_wrapper.type=OptimWrapper, but the config has '
                         f'{wrapper_type!r}; set mixed precision in the config instead')
    if dtype is None:
        dtype = 'float16' if torch.cuda.is_available() else 'bfloat16'
    if dtype == 'bfloat16':
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
        return
    if not torch.cuda.is_available():
        raise SystemExit('--amp-dtype float16 needs a CUDA GPU (loss scaling is CUDA\'s); '
                         'without one --amp trains in bfloat16')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = 'float16'
    cfg.optim_wrapper.setdefault('loss_scale', cfg.get('amp_loss_scale', 'dynamic'))


def enable_auto_scale_lr(cfg: Config) -> None:
    """Turn on mmengine's ``auto_scale_lr``, which needs the batch the lr was set for."""
    if (cfg.get('auto_scale_lr') or {}).get('base_batch_size') is None:
        raise SystemExit('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config: '
                         'the total batch its learning rate was set for, e.g. '
                         'auto_scale_lr = dict(enable=False, base_batch_size=16)')
    cfg.auto_scale_lr.enable = True


def check_load_from(cfg: Config) -> None:
    """Fail before building anything when the weights a config starts from are missing."""
    load_from = cfg.get('load_from')
    if load_from and not cfg.get('resume') and '://' not in load_from and not osp.isfile(
            load_from):
        raise SystemExit(f'load_from: {load_from} does not exist. It is the checkpoint this '
                         'config starts training from; its comment says how to make it.')


def check_sync_bn(cfg: Config, launcher: str) -> None:
    """Refuse SyncBN in distributed training on the CPU, where torch's SyncBatchNorm stops at
    its first forward (testing and single-process runs use plain BatchNorm and are fine)."""
    if cfg.get('sync_bn') and launcher != 'none' and not torch.cuda.is_available():
        raise SystemExit(f'sync_bn={cfg.sync_bn!r}: SyncBatchNorm trains on GPUs only; to train '
                         'this config on the CPU, keep BatchNorm per process with '
                         '--cfg-options sync_bn=None')


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied (work dir, AMP, resume, overrides)."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp_dtype is not None and not args.amp:
        raise SystemExit('--amp-dtype needs --amp')
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    return cfg


def main() -> None:
    """Build the runner from the config and the flags, and train."""
    args = parse_args()
    warn_if_deprecated(args.config)
    cfg = build_config(args)
    check_load_from(cfg)
    check_sync_bn(cfg, args.launcher)
    setup_launcher(cfg, args.launcher)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
