"""Train a model from a config with mmengine's Runner.

Examples:
    python tools/train.py configs/risfusion_swin-b.py --work-dir work_dirs/risfusion
    python tools/train.py CONFIG --resume                  # latest checkpoint of the work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_4000.pth
    bash tools/dist_train.sh CONFIG 8                       # 8 processes with torchrun
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
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    return cfg


def main() -> None:
    """Build the runner from the config and the flags, and train."""
    args = parse_args()
    warn_if_deprecated(args.config)
    cfg = build_config(args)
    setup_launcher(cfg, args.launcher)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
