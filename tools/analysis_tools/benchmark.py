"""Measure a config's training-step time, inference latency and peak memory.

Example:
    python tools/analysis_tools/benchmark.py configs/risfusion_swin-b.py --iters 5 \
        --out work_dirs/benchmark.json

One batch of the config's train dataloader (one sample of the test dataloader for
inference) is loaded once and fed repeatedly, so the figures are the model's own cost
without data loading. On a GPU the peak memory is ``torch.cuda.max_memory_allocated`` of
each phase; on the CPU it is the process's peak resident set size (``ru_maxrss``), which only
grows, so inference (the smaller phase) is measured first.

With ``--onnx`` (RIS-FUSION, CPU) the network is also exported to ONNX (or an export is
given) and ONNX Runtime and PyTorch run it on the test sample in turns, with the same number
of threads; their outputs are compared in the same run.
"""
import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

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
    parser.add_argument('--onnx', nargs='?', const='', metavar='MODEL.onnx',
                        help='also time ONNX Runtime against PyTorch on the CPU: export the '
                        'model first, or use this export of it (tools/deployment/'
                        'pytorch2onnx.py)')
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


def onnx_vs_pytorch(model: torch.nn.Module, test_batch: dict, iters: int, warmup: int,
                    onnx_file: Optional[str] = None) -> Dict[str, object]:
    """Latency of ONNX Runtime and of PyTorch on one test sample, timed in turns.

    Both run the same graph (``RISFusionForExport``: text encoder to logits and fused image,
    no pipeline, no post-processing) on the same inputs, with ``torch.get_num_threads()``
    threads each; calls alternate so that a change of the machine's load hits both alike.

    Args:
        model (nn.Module): A RIS-FUSION model with ``cfg``, on the CPU.
        test_batch (dict): One sample from the test dataloader.
        iters (int): Timed calls of each runtime.
        warmup (int): Untimed calls of each first.
        onnx_file (str, optional): An export of this model at the sample's size. Defaults to
            None (export to a temporary folder first).

    Returns:
        dict: ``pytorch`` and ``onnxruntime`` (mean/median/min ms), ``speedup`` (PyTorch
        mean / ONNX Runtime mean), ``max_abs_diff`` on this sample and, for scale, PyTorch's
        own ``float32_noise`` on it (float32 against float64), ``threads``.
    """
    from mmrisfusion.deployment import (
        INPUT_NAMES,
        RISFusionForExport,
        export_onnx,
        float32_noise,
        max_abs_diff,
        onnx_session,
    )
    model.eval()
    with torch.no_grad():
        inputs = model.data_preprocessor(test_batch)['inputs']
    args = tuple(inputs[name].cpu() for name in INPUT_NAMES)
    shape = list(args[2].shape[2:])
    given = onnx_file or None
    with tempfile.TemporaryDirectory() as folder:
        if given is None:
            onnx_file = str(Path(folder) / 'model.onnx')
            export_onnx(model, onnx_file, shape=shape)
        exported = json.loads(Path(onnx_file).with_suffix('.json').read_text())
        if exported['preprocess']['input_size'] != shape:
            raise SystemExit(f'{onnx_file} takes {exported["preprocess"]["input_size"]} '
                             f'inputs, the test sample is {shape}: export at that size')
        threads = torch.get_num_threads()
        session = onnx_session(onnx_file, threads=threads)
    module = RISFusionForExport(model).eval()
    feeds = {name: arg.numpy() for name, arg in zip(INPUT_NAMES, args)}
    times = dict(pytorch=[], onnxruntime=[])
    calls = dict(pytorch=lambda: module(*args), onnxruntime=lambda: session.run(None, feeds))
    with torch.no_grad():
        for _ in range(warmup + iters):
            for name, call in calls.items():
                times[name] += time_calls(call, 1, 0, torch.device('cpu'))
    times = {name: values[warmup:] for name, values in times.items()}
    return dict(pytorch=summarise(times['pytorch']), onnxruntime=summarise(times['onnxruntime']),
                speedup=statistics.fmean(times['pytorch']) / statistics.fmean(
                    times['onnxruntime']),
                max_abs_diff=max_abs_diff(session, module, [args]),
                float32_noise=float32_noise(module, [args]), threads=threads, onnx_file=given)


def main() -> None:
    """Build the model and the data, time both phases and report."""
    args = parse_args()
    if args.iters < 1 or args.warmup < 0:
        raise SystemExit('--iters must be >= 1 and --warmup >= 0')
    if args.onnx is not None and args.device != 'cpu':
        raise SystemExit('--onnx compares ONNX Runtime with PyTorch on the CPU: add --device cpu')
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
    onnx_report = (onnx_vs_pytorch(model, test_batch, args.iters, args.warmup, args.onnx)
                   if args.onnx is not None else None)

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
    if onnx_report is not None:
        report['onnx'] = onnx_report
        print(f"{'ONNX Runtime (1 sample)':<28}{onnx_report['onnxruntime']['mean_ms']:.1f} ms "
              f"mean vs PyTorch {onnx_report['pytorch']['mean_ms']:.1f} ms "
              f"(x{onnx_report['speedup']:.2f}, {onnx_report['threads']} threads each); max "
              'abs diff ' + ', '.join(f'{k} {v:.1e}'
                                      for k, v in onnx_report['max_abs_diff'].items())
              + ' (PyTorch float32 vs float64: ' + ', '.join(
                  f'{k} {v:.1e}' for k, v in onnx_report['float32_noise'].items()) + ')')
    if args.out is not None:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)


if __name__ == '__main__':
    main()
