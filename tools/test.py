"""Evaluate a checkpoint on a config's test set and, optionally, write every prediction.

Examples:
    python tools/test.py CONFIG work_dirs/x/best_oIoU_iter_4000.pth --out-dir results/x
    python tools/test.py CONFIG CKPT --amp      # bfloat16 on the CPU, float16 on a GPU
    python tools/test.py CONFIG CKPT --tta      # the mean over the config's tta_pipeline views
    bash tools/dist_test.sh CONFIG CKPT 8 --out-dir results/x

``--out-dir DIR`` writes ``fused/``, ``masks/``, ``overlays/`` (prediction in red on the
fused image), ``gt_overlays/`` (ground truth in green), ``samples.json`` (file stem ->
image name, index, expression) and ``metrics.json`` (the evaluator's numbers); with
``--panels`` also ``panels/`` (VIS, IR, fused, prediction, GT and the expression).
"""
import argparse
import json
import os
import os.path as osp
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmrisfusion.apis import load_model_checkpoint
from mmrisfusion.apis.model_zoo import warn_if_deprecated
from mmrisfusion.utils import setup_launcher


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a text-driven '
                                     'fusion/RIS model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint: a .pth saved by tools/train.py (loaded '
                        'weights only) or a .safetensors file')
    parser.add_argument('--out-dir', help='write fused images, masks, overlays and '
                        'metrics.json here')
    parser.add_argument('--panels', action='store_true', help='with --out-dir, also write '
                        'captioned VIS/IR/fused/prediction/GT panels')
    parser.add_argument('--amp', action='store_true', help='mixed precision: bfloat16 '
                        'autocast on the CPU, float16 on a GPU (metrics stay float32)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation: the '
                        "config's tta_model averages the predictions over the views of its "
                        'tta_pipeline (shipped: as it is and flipped with "left"/"right" '
                        'swapped)')
    parser.add_argument('--work-dir', help='where the logs go (default: the config\'s '
                        'work_dir, else work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: none (one process), pytorch (torchrun) or slurm')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def use_tta(cfg: Config, config_path: str) -> None:
    """Wrap the model in ``tta_model`` and give every test dataset ``tta_pipeline``.

    The test set may be a wrapper (``ConcatDataset``, ``MismatchedTextDataset``): every
    dataset config in it with a ``pipeline`` gets the TTA one.
    """
    missing = [key for key in ('tta_model', 'tta_pipeline') if cfg.get(key) is None]
    if missing:
        raise SystemExit(f'--tta: {config_path} has no {" and no ".join(missing)}; see '
                         'configs/_base_/datasets/mm-ris-synthetic_128x128.py for both')
    found = []

    def replace(dataset: dict) -> None:
        if 'pipeline' in dataset:
            dataset['pipeline'] = cfg.tta_pipeline
            found.append(dataset)
        for child in [dataset.get('dataset')] + list(dataset.get('datasets') or []):
            if isinstance(child, dict):
                replace(child)

    replace(cfg.test_dataloader.dataset)
    if not found:
        raise SystemExit(f'--tta: no dataset with a pipeline in the test_dataloader of '
                         f'{config_path}')
    cfg.model = dict(cfg.tta_model, module=cfg.model)


def main() -> None:
    """Build the runner, load the checkpoint strictly, test, and write the metrics."""
    args = parse_args()
    warn_if_deprecated(args.config)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    # The checkpoint is loaded below (strict, weights only, .safetensors too), not by the
    # Runner, whose load_from is non-strict and knows only torch.load.
    cfg.load_from = None
    cfg.resume = False
    if args.amp:
        # mmengine's TestLoop autocasts with fp16=True: float16 on a GPU, bfloat16 on the CPU.
        cfg.test_cfg = dict(cfg.get('test_cfg') or dict(type='TestLoop'), fp16=True)
    if args.tta:
        use_tta(cfg, args.config)
    if args.panels and args.out_dir is None:
        raise SystemExit('--panels needs --out-dir')
    if args.out_dir is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='RISResultSaverHook', out_dir=args.out_dir, panels=args.panels)]
    setup_launcher(cfg, args.launcher)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if isinstance(model, BaseTTAModel):
        model = model.module
    meta = load_model_checkpoint(model, args.checkpoint)
    if 'dataset_meta' in meta:
        model.dataset_meta = meta['dataset_meta']
    print_log(f'Loaded {args.checkpoint}', logger='current')
    metrics = runner.test()
    if args.out_dir is not None and is_main_process():
        path = Path(args.out_dir) / 'metrics.json'
        with open(path, 'w') as f:
            json.dump({k: float(v) if hasattr(v, '__float__') else v
                       for k, v in metrics.items()}, f, indent=2)
        print_log(f'Wrote the predictions and {path}', logger='current')


if __name__ == '__main__':
    main()
