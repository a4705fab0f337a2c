"""Measure a config's training-step time, inference latency and peak memory.

Example:
    python tools/analysis_tools/benchmark.py configs/risfusion_swin-b.py --iters 5 \
        --out work_dirs/benchmark.json

One batch of the config's train dataloader (one sample of the test dataloader for
inference) is loaded once and fed repeatedly, so the figures are the model's own cost
without data loading. On a GPU the peak memory is ``torch.cuda.max_memory_allocated`` of
each phase; on the CPU it is the process's peak resident set size (``ru_maxrss``), which only
grows, so inference (the smaller phase) is measured first.
"""
import argparse
import json
import platform
import resource
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmrisfusion.apis import load_model_checkpoint


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Benchmark training and inference of a config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='weights to load (default: the config\'s init)')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per phase')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first')
    parser.add_argument('--batch-size', type=int, help='training batch size (default: the '
                        'config\'s train_dataloader.batch_size)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device (default: cuda if available, else cpu)')
    parser.add_argument('--threads', type=int, help='CPU threads of torch (default: torch\'s '
                        'own choice; on a busy machine 1 can be much faster)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args()


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory so far in MiB: CUDA allocations on a GPU, the process's RSS on the CPU."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10


def time_calls(fn: Callable[[], object], iters: int, warmup: int,
               device: torch.device) -> List[float]:
    """Seconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    times = []
    for k in range(warmup + iters):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return times


def summarise(times: List[float]) -> Dict[str, float]:
    """Mean, median and min in milliseconds."""
    return dict(mean_ms=1e3 * statistics.fmean(times), median_ms=1e3 * statistics.median(times),
                min_ms=1e3 * min(times))


def main() -> None:
    """Build the model and the data, time both phases and report."""
    args = parse_args()
    if args.iters < 1 or args.warmup < 0:
        raise SystemExit('--iters must be >= 1 and --warmup >= 0')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    init_default_scope(cfg.get('default_scope', 'mmrisfusion'))
    from mmrisfusion.registry import MODELS
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if args.checkpoint is not None:
        load_model_checkpoint(model, args.checkpoint)
    model.to(device)
    num_params = sum(p.numel() for p in model.parameters())
    num_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    test_loader_cfg = dict(cfg.test_dataloader, batch_size=1, num_workers=0,
                           persistent_workers=False)
    test_batch = next(iter(Runner.build_dataloader(test_loader_cfg)))
    train_loader_cfg = dict(cfg.train_dataloader, num_workers=0, persistent_workers=False)
    if args.batch_size is not None:
        train_loader_cfg['batch_size'] = args.batch_size
    train_batch = next(iter(Runner.build_dataloader(train_loader_cfg)))

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    model.eval()
    with torch.no_grad():
        infer_times = time_calls(lambda: model.test_step(test_batch), args.iters,
                                 args.warmup, device)
    infer_peak = peak_memory_mib(device)

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    train_times = time_calls(lambda: model.train_step(train_batch, optim_wrapper), args.iters,
                             args.warmup, device)
    train_peak = peak_memory_mib(device)

    batch_size = len(train_batch['data_samples'])
    report = dict(
        config=args.config, device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                     else platform.processor() or platform.machine()),
        torch_threads=torch.get_num_threads(), params_m=num_params / 1e6,
        trainable_params_m=num_trainable / 1e6, train_batch_size=batch_size,
        train_step=summarise(train_times),
        train_step_per_sample_ms=1e3 * statistics.fmean(train_times) / batch_size,
        inference=summarise(infer_times),
        peak_memory_mib=dict(
            inference=infer_peak, train=train_peak,
            kind='cuda max_memory_allocated' if device.type == 'cuda'
            else 'process peak RSS (cumulative)'),
        iters=args.iters, warmup=args.warmup)
    print(f"{'config':<28}{args.config}\n{'device':<28}{report['device_name']} ({device}, "
          f"{report['torch_threads']} threads)\n"
          f"{'parameters':<28}{report['params_m']:.2f} M "
          f"({report['trainable_params_m']:.2f} M trainable)\n"
          f"{'train step (batch ' + str(batch_size) + ')':<28}"
          f"{report['train_step']['mean_ms']:.1f} ms mean, "
          f"{report['train_step']['median_ms']:.1f} ms median\n"
          f"{'inference (1 sample)':<28}{report['inference']['mean_ms']:.1f} ms mean, "
          f"{report['inference']['median_ms']:.1f} ms median\n"
          f"{'peak memory':<28}inference {infer_peak:.0f} MiB, train {train_peak:.0f} MiB "
          f"({report['peak_memory_mib']['kind']})")
    if args.out is not None:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)


if __name__ == '__main__':
    main()
