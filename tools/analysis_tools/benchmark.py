"""Measure a config's training step and inference: time, samples/s, peak memory, profile.

Examples:
    python tools/analysis_tools/benchmark.py configs/risfusion_swin-b.py --iters 5 \
        --out work_dirs/benchmark.json
    # Swin-B at 480x480 without the dataset or pretrained files (random weights and inputs),
    # float32 and bfloat16, against the code of another git revision in the same run:
    python tools/analysis_tools/benchmark.py configs/risfusion_swin-b.py --synthetic 480x480 \
        --batch-size 2 --precision fp32 bf16 --baseline HEAD~3 --threads 1 --iters 5 \
        --cfg-options model.text_encoder.model_path=None \
        model.text_encoder.hf_config.model_type=bert model.backbone.init_cfg=None

One batch (of the config's train dataloader, or random with ``--synthetic HxW``) is built
once and fed repeatedly, so the figures are the model's own cost without data loading;
inference runs on a batch of ``--infer-batch-size`` samples (default 1: latency).

The *variants* are the working tree's code in each ``--precision`` (``fp32``;
``bf16``/``fp16``: autocast, with mmrisfusion's ``AutocastOptimWrapper`` or mmengine's
``AmpOptimWrapper`` for training) and, with ``--baseline REV``, the code of that git revision
in float32 (exported with ``git archive``). The precisions of one revision share a model and
alternate iteration by iteration. With ``--baseline`` each revision runs in a worker process
(``PYTHONPATH`` = its tree) started fresh for each of ``--rounds`` rounds, one worker alive at
a time (two Swin-B models with their optimizer states do not fit a small machine together),
the revisions alternating round by round; every worker starts from the same initial weights.
Before timing, each variant's outputs on the train batch in eval mode (the ``tensor`` mode's
outputs and the ``loss`` mode's losses) are compared with the first variant's; the largest
absolute difference is reported, and a baseline differing by more than ``--atol`` makes the
tool exit with status 1 after the report.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` of each phase; on Linux CPUs the
peak resident set size of each phase (``VmHWM``, reset between phases through
``/proc/self/clear_refs``), elsewhere the process's cumulative peak.

``--profile`` runs one more step of every phase under ``torch.profiler`` and writes the top
operators by self time to ``--work-dir`` (``profile_<variant>_<phase>.txt``).

With ``--onnx`` (RIS-FUSION, CPU, no ``--baseline``) the network is also exported to ONNX (or
an export is given) and ONNX Runtime and PyTorch run it on the test sample in turns, with the
same number of threads; their outputs are compared in the same run.
"""
import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Dict, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, set_random_seed
from mmengine.structures import PixelData

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PHASES = ('inference', 'train')
CLEAR_REFS = Path('/proc/self/clear_refs')
REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Benchmark training and inference of a config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='weights to load (default: the config\'s init)')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per phase')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first')
    parser.add_argument('--batch-size', type=int, help='training batch size (default: the '
                        'config\'s train_dataloader.batch_size)')
    parser.add_argument('--infer-batch-size', type=int, default=1,
                        help='inference batch size (default: 1)')
    parser.add_argument('--synthetic', metavar='HxW',
                        help='random images, masks and tokens of this size instead of the '
                        'config\'s data')
    parser.add_argument('--precision', nargs='+', default=['fp32'], choices=list(PRECISIONS),
                        help='precisions of the working tree\'s code to time (default: fp32)')
    parser.add_argument('--baseline', metavar='REV', help='also time the code of this git '
                        'revision (float32), in a worker process, alternating with ours')
    parser.add_argument('--rounds', type=int, default=1,
                        help='rounds over the variants; with --baseline each round runs '
                        'each revision in a fresh worker, one at a time (default: 1)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest absolute difference of the baseline\'s outputs from ours '
                        '(default: 1e-4)')
    parser.add_argument('--profile', action='store_true',
                        help='write the top operators of one step per phase to --work-dir')
    parser.add_argument('--work-dir', default='work_dirs/benchmark',
                        help='where --profile writes (default: work_dirs/benchmark)')
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
    parser.add_argument('--worker', help=argparse.SUPPRESS)  # the baseline's side of a pipe
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1 and --warmup >= 0')
    if args.onnx is not None and (args.device != 'cpu' or args.baseline is not None):
        parser.error('--onnx compares ONNX Runtime with PyTorch on the CPU, in this process: '
                     'use it with --device cpu and without --baseline')
    return args


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of the phase in MiB: CUDA allocations on a GPU, resident memory on CPUs."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path('/proc/self/status')
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 2**10  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10


def reset_peak_memory(device: torch.device) -> str:
    """Start a new peak-memory phase; return how the peak is measured."""
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        return 'cuda max_memory_allocated'
    try:
        CLEAR_REFS.write_text('5')  # resets VmHWM to the current RSS (Linux >= 4.0)
        return 'peak RSS of the phase (VmHWM)'
    except OSError:
        return 'process peak RSS (cumulative)'


def synthetic_batch(cfg: Config, size: str, batch_size: int, seed: int) -> dict:
    """A collated batch of random VIS/IR images, masks and expressions of ``size`` (HxW)."""
    from mmrisfusion.structures import RISDataSample
    try:
        height, width = (int(v) for v in size.lower().split('x'))
    except ValueError:
        raise SystemExit(f'--synthetic expects HxW, e.g. 480x480, got {size!r}')
    generator = torch.Generator().manual_seed(seed)
    text_cfg = cfg.model.get('text_encoder') or {}
    vocab = (text_cfg.get('hf_config') or {}).get('vocab_size', 30522)
    num_tokens = cfg.get('max_tokens', 20)
    samples, vis, ir = [], [], []
    for _ in range(batch_size):
        vis.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                                 generator=generator))
        ir.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                                generator=generator))
        sample = RISDataSample(metainfo=dict(img_shape=(height, width),
                                             ori_shape=(height, width)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 2, (1, height, width), generator=generator))
        words = int(torch.randint(3, num_tokens + 1, (1, ), generator=generator))
        sample.token_ids = torch.randint(1000, vocab, (num_tokens, ), generator=generator)
        sample.token_mask = (torch.arange(num_tokens) < words).long()
        samples.append(sample)
    return dict(inputs=dict(vis=vis, ir=ir), data_samples=samples)


def config_batch(cfg: Config, split: str, batch_size: Optional[int]) -> dict:
    """The first batch of the config's ``split`` dataloader, the same in every process.

    Seeded (sampler order and the random transforms), so that a baseline worker compares
    its outputs with ours on the same samples.
    """
    loader_cfg = dict(cfg[f'{split}_dataloader'], num_workers=0, persistent_workers=False)
    if batch_size is not None:
        loader_cfg['batch_size'] = batch_size
    set_random_seed(0)
    return next(iter(Runner.build_dataloader(loader_cfg, seed=0)))


def flat_outputs(outputs, prefix: str) -> Dict[str, torch.Tensor]:
    """Tensors of a (nested) model output by name, float32 on the CPU."""
    if isinstance(outputs, torch.Tensor):
        return {prefix: outputs.detach().float().cpu()}
    if isinstance(outputs, dict):
        items = outputs.items()
    elif isinstance(outputs, (list, tuple)):
        items = ((str(i), value) for i, value in enumerate(outputs))
    else:
        return {}
    flat = {}
    for key, value in items:
        flat.update(flat_outputs(value, f'{prefix}.{key}'))
    return flat


class Session:
    """A model with its batches and optimizer, stepped in any of several precisions.

    Args:
        args (argparse.Namespace): The command line.
        device (torch.device): Where to run.
        init_state (str, optional): A ``torch.save`` d state dict to start from (the baseline
            starts from our initial weights). Defaults to None.
    """

    def __init__(self, args: argparse.Namespace, device: torch.device,
                 init_state: Optional[str] = None) -> None:
        cfg = Config.fromfile(args.config)
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmrisfusion'))
        from mmrisfusion.registry import MODELS
        torch.manual_seed(0)
        self.device = device
        self.model = MODELS.build(cfg.model)
        if init_state is not None:
            self.model.load_state_dict(torch.load(init_state, weights_only=True))
        elif args.checkpoint is not None:
            from mmrisfusion.apis import load_model_checkpoint
            load_model_checkpoint(self.model, args.checkpoint)
        else:
            self.model.init_weights()
        self.model.to(device)
        if args.synthetic:
            batch_size = args.batch_size or cfg.train_dataloader.batch_size
            self.train_batch = synthetic_batch(cfg, args.synthetic, batch_size, seed=0)
            self.test_batch = synthetic_batch(cfg, args.synthetic, args.infer_batch_size, seed=1)
        else:
            self.train_batch = config_batch(cfg, 'train', args.batch_size)
            self.test_batch = config_batch(cfg, 'test', args.infer_batch_size)
        self.batch_size = len(self.train_batch['data_samples'])
        self.params_m = sum(p.numel() for p in self.model.parameters()) / 1e6
        self.infer_batch_size = len(self.test_batch['data_samples'])
        self.optim_wrappers: dict = {}
        self.optim_cfg = cfg.optim_wrapper
        self.optimizer = None

    def optim_wrapper(self, precision: str):
        """The config's optimizer, wrapped for ``precision``; one optimizer for all."""
        if precision not in self.optim_wrappers:
            cfg = copy.deepcopy(self.optim_cfg)
            if precision == 'bf16':
                cfg.update(type='AutocastOptimWrapper', dtype='bfloat16')
            elif precision == 'fp16':
                cfg.update(type='AmpOptimWrapper', dtype='float16')
            wrapper = build_optim_wrapper(self.model, cfg)
            if self.optimizer is None:
                self.optimizer = wrapper.optimizer
            else:
                wrapper.optimizer = self.optimizer
            self.optim_wrappers[precision] = wrapper
        return self.optim_wrappers[precision]

    def autocast(self, precision: str):
        """The autocast context of ``precision`` for inference."""
        dtype = PRECISIONS[precision]
        return (nullcontext() if dtype is None else
                torch.autocast(self.device.type, dtype=dtype))

    def step(self, phase: str, precision: str) -> float:
        """Run one step of ``phase``; return its seconds."""
        if phase == 'train':
            wrapper = self.optim_wrapper(precision)
            self.model.train()

            def fn():
                return self.model.train_step(self.train_batch, wrapper)
        else:
            self.model.eval()

            def fn():
                with torch.no_grad(), self.autocast(precision):
                    return self.model.test_step(self.test_batch)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        fn()
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def outputs(self, precision: str) -> Dict[str, torch.Tensor]:
        """Eval-mode outputs on the train batch: the ``tensor`` mode's and the losses."""
        self.model.eval()
        with torch.no_grad(), self.autocast(precision):
            data = self.model.data_preprocessor(copy.deepcopy(self.train_batch), False)
            out = flat_outputs(self.model(data['inputs'], data['data_samples'], mode='tensor'),
                               'tensor')
            losses = self.model(data['inputs'], data['data_samples'], mode='loss')
            out.update(flat_outputs({k: v for k, v in losses.items() if 'loss' in k}, 'loss'))
        return out

    def profile(self, phase: str, precision: str, path: Path) -> None:
        """Profile one step; write the top operators by self time to ``path``."""
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU]
        if self.device.type == 'cuda':
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities, record_shapes=True) as prof:
            seconds = self.step(phase, precision)
        sort_by = 'self_cuda_time_total' if self.device.type == 'cuda' else 'self_cpu_time_total'
        table = prof.key_averages().table(sort_by=sort_by, row_limit=40)
        shapes = prof.key_averages(group_by_input_shape=True).table(
            sort_by=sort_by, row_limit=25, max_shapes_column_width=100)
        path.write_text(f'{phase} step in {precision}: {seconds:.3f} s (under the profiler)\n\n'
                        f'{table}\n\nby input shape:\n{shapes}\n')


class WorkerSession:
    """A :class:`Session` of some code revision, in a child process, driven over a pipe.

    Args:
        root (Path): The revision's tree (its ``mmrisfusion`` is imported, its config read).
        args (argparse.Namespace): The command line (model, batch and device options).
        init_state (str): The initial weights: loaded when the file exists, else written
            there after initialisation (so that every worker starts from the same weights).
    """

    def __init__(self, root: Path, args: argparse.Namespace, init_state: str) -> None:
        config = Path(args.config).resolve()
        if config.is_relative_to(REPO_ROOT):  # else a config of the user's, shared by all
            config = root / config.relative_to(REPO_ROOT)
        argv = [sys.executable, str(Path(__file__).resolve()), str(config),
                '--worker', init_state, '--device', args.device,
                '--infer-batch-size', str(args.infer_batch_size)]
        for flag in ('checkpoint', 'batch_size', 'synthetic', 'threads'):
            value = getattr(args, flag)
            if value is not None:
                argv += [f'--{flag.replace("_", "-")}', str(value)]
        if args.cfg_options:
            argv += ['--cfg-options', *(f'{k}={v}' for k, v in args.cfg_options.items())]
        env = dict(os.environ, PYTHONPATH=str(root))
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=REPO_ROOT)
        self.batch_size, self.infer_batch_size, self.params_m = self.call('sizes')

    def call(self, *command):
        """Send a command, return the worker's answer."""
        self.proc.stdin.write(json.dumps(command) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f'a benchmark worker died (exit status {self.proc.wait()}); '
                             'its error is above')
        return json.loads(line)

    def step(self, phase: str, precision: str) -> float:
        """Seconds of one step (see :meth:`Session.step`)."""
        return self.call('step', phase, precision)

    def outputs(self, precision: str) -> Dict[str, torch.Tensor]:
        """The worker's :meth:`Session.outputs`."""
        with tempfile.NamedTemporaryFile(suffix='.pth', delete=False) as file:
            path = file.name
        try:
            self.call('outputs', precision, path)
            return torch.load(path, weights_only=True)
        finally:
            os.unlink(path)

    def peak_step(self, phase: str, precision: str) -> float:
        """Peak memory (MiB) of one more step alone."""
        return self.call('peak_step', phase, precision)

    def profile(self, phase: str, precision: str, path: Path) -> None:
        """The worker's :meth:`Session.profile`."""
        self.call('profile', phase, precision, str(path))

    def close(self) -> None:
        """Stop the worker (its memory is freed before the next one starts)."""
        self.call('exit')
        self.proc.wait()


def peak_step(runner: Session, phase: str, precision: str) -> float:
    """Peak memory (MiB) of one step of ``runner`` in this process."""
    reset_peak_memory(runner.device)
    runner.step(phase, precision)
    return peak_memory_mib(runner.device)


def serve(args: argparse.Namespace) -> None:
    """The worker: build a session and answer the parent's commands until 'exit'."""
    # Answers go to the original stdout; everything else printed to it (logs) to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    device = torch.device(args.device)
    init_state = args.worker if os.path.isfile(args.worker) else None
    session = Session(args, device, init_state=init_state)
    if init_state is None:
        torch.save(session.model.state_dict(), args.worker)
    for line in sys.stdin:
        command, *params = json.loads(line)
        answer = 'ok'
        if command == 'sizes':
            answer = [session.batch_size, session.infer_batch_size, session.params_m]
        elif command == 'step':
            answer = session.step(*params)
        elif command == 'outputs':
            torch.save(session.outputs(params[0]), params[1])
        elif command == 'peak_step':
            answer = peak_step(session, *params)
        elif command == 'profile':
            session.profile(params[0], params[1], Path(params[2]))
        out.write(json.dumps(answer) + '\n')
        out.flush()
        if command == 'exit':
            return


def max_abs_difference(ours: Dict[str, torch.Tensor], theirs: Dict[str, torch.Tensor],
                       who: str) -> Dict[str, float]:
    """Largest absolute difference of every output both variants give."""
    if ours.keys() != theirs.keys():
        raise SystemExit(f'{who} gives outputs {sorted(theirs)}, we give {sorted(ours)}')
    return {key: float((ours[key] - theirs[key]).abs().max()) for key in ours}


def summarise(times: List[float], batch_size: int) -> Dict[str, float]:
    """Median, mean and min in milliseconds, and samples per second at the median."""
    median = statistics.median(times)
    return dict(median_ms=1e3 * median, mean_ms=1e3 * statistics.fmean(times),
                min_ms=1e3 * min(times), samples_per_s=batch_size / median)


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
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    times = {name: values[warmup:] for name, values in times.items()}
    return dict(pytorch=summarise(times['pytorch'], 1),
                onnxruntime=summarise(times['onnxruntime'], 1),
                speedup=statistics.fmean(times['pytorch']) / statistics.fmean(
                    times['onnxruntime']),
                max_abs_diff=max_abs_diff(session, module, [args]),
                float32_noise=float32_noise(module, [args]), threads=threads, onnx_file=given)


def cpu_name() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), its core count and torch's kernels."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith('model name'):
                name = line.split(':', 1)[1].strip()
                break
    return (f'{name}, {os.cpu_count()} cores, '
            f'{torch.backends.cpu.get_cpu_capability()} kernels')


def load_line() -> str:
    """The load averages, as ``uptime`` prints them."""
    return ', '.join(f'{v:.2f}' for v in os.getloadavg())


class Group:
    """The variants that share one model: one code revision in one or more precisions.

    Args:
        name (str): ``'current'`` or ``'baseline REV'``.
        precisions (list[str]): The precisions timed.
        open_runner (Callable): Returns a :class:`Session` or :class:`WorkerSession`.
    """

    def __init__(self, name: str, precisions: List[str], open_runner) -> None:
        self.name = name
        self.precisions = precisions
        self.open_runner = open_runner
        self.times = {(phase, p): [] for phase in PHASES for p in precisions}
        self.peaks: Dict[tuple, float] = {}
        self.outputs: Dict[str, Dict[str, torch.Tensor]] = {}
        self.batch_sizes = None

    def variant(self, precision: str) -> str:
        """The variant's name in the report."""
        return precision if self.name == 'current' else f'{self.name} {precision}'

    def run(self, args: argparse.Namespace, first_round: bool) -> None:
        """One round: build the runner, take outputs (first round), time every phase."""
        runner = self.open_runner()
        self.batch_sizes = dict(train=runner.batch_size, inference=runner.infer_batch_size)
        self.params_m = runner.params_m
        if first_round:
            for precision in self.precisions:
                self.outputs[precision] = runner.outputs(precision)
        for phase in PHASES:
            for precision in self.precisions:
                for _ in range(args.warmup):
                    runner.step(phase, precision)
            for _ in range(args.iters):  # precisions alternate iteration by iteration
                for precision in self.precisions:
                    self.times[phase, precision].append(runner.step(phase, precision))
            for precision in self.precisions:
                peak = (runner.peak_step(phase, precision) if isinstance(runner, WorkerSession)
                        else peak_step(runner, phase, precision))
                self.peaks[phase, precision] = max(peak, self.peaks.get((phase, precision), 0))
        if first_round and args.profile:
            Path(args.work_dir).mkdir(parents=True, exist_ok=True)
            tag = self.name.replace(' ', '_')
            for precision in self.precisions:
                for phase in PHASES:
                    runner.profile(phase, precision, Path(args.work_dir) /
                                   f'profile_{tag}_{precision}_{phase}.txt')
        if isinstance(runner, WorkerSession):
            runner.close()


def main() -> None:
    """Build the variants, check their outputs, time them and report."""
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:  # the allocator setting of tools/train.py, where the imported revision has it
        from mmrisfusion.utils.allocator import keep_freed_memory
        keep_freed_memory()
    except ImportError:
        pass
    if args.worker is not None:
        serve(args)
        return
    device = torch.device(args.device)
    report = dict(config=args.config, device=str(device),
                  device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                               else cpu_name()),
                  torch_threads=torch.get_num_threads(), iters=args.iters, warmup=args.warmup,
                  rounds=args.rounds, synthetic=args.synthetic, baseline=args.baseline,
                  load_start=load_line(),
                  peak_memory_kind=reset_peak_memory(device))
    tmp = tempfile.TemporaryDirectory(prefix='benchmark_')
    if args.baseline is None:
        # One model in this process; the precisions alternate iteration by iteration.
        session = Session(args, device)
        groups = [Group('current', args.precision, lambda: session)]
    else:
        # Each revision in its own worker, one worker alive at a time (two Swin-B models
        # and their optimizer states do not fit a small machine together), alternating.
        from revision import export_revision
        root = export_revision(args.baseline, os.path.join(tmp.name, 'baseline'))
        init_state = os.path.join(tmp.name, 'init.pth')  # written by the first worker
        groups = [Group('current', args.precision,
                        lambda: WorkerSession(REPO_ROOT, args, init_state)),
                  Group(f'baseline {args.baseline}', ['fp32'],
                        lambda: WorkerSession(root, args, init_state))]
    for round_index in range(args.rounds):
        for group in groups:
            group.run(args, first_round=round_index == 0)
    tmp.cleanup()
    if args.onnx is not None:
        report['onnx'] = onnx_vs_pytorch(session.model, session.test_batch, args.iters,
                                         args.warmup, args.onnx)

    report['params_m'] = groups[0].params_m
    reference_group = groups[0]
    first = reference_group.variant(args.precision[0])
    reference = reference_group.outputs[args.precision[0]]
    report['max_abs_difference'] = {
        group.variant(p): max_abs_difference(reference, group.outputs[p], group.variant(p))
        for group in groups for p in group.precisions if group.variant(p) != first}
    results = {}
    for group in groups:
        for precision in group.precisions:
            results[group.variant(precision)] = {
                phase: dict(summarise(group.times[phase, precision], group.batch_sizes[phase]),
                            peak_memory_mib=group.peaks[phase, precision],
                            times_s=group.times[phase, precision]) for phase in PHASES}
    batch_sizes = reference_group.batch_sizes
    report.update(variants=results, load_end=load_line(), train_batch_size=batch_sizes['train'],
                  infer_batch_size=batch_sizes['inference'])

    print(f'{"config":<22}{args.config}\n{"device":<22}{report["device_name"]} ({device}, '
          f'{report["torch_threads"]} threads), load {report["load_start"]} -> '
          f'{report["load_end"]}\n{"parameters":<22}{report["params_m"]:.2f} M\n'
          f'train batch {batch_sizes["train"]}, inference batch '
          f'{batch_sizes["inference"]}; {args.rounds} round(s) of {args.iters} timed '
          f'iterations after {args.warmup}; medians; peak memory: {report["peak_memory_kind"]}')
    for phase in PHASES:
        for name, figures in results.items():
            figures = figures[phase]
            speedup = figures['median_ms'] / results[first][phase]['median_ms']
            print(f'{phase:<10}{name:<24}{figures["median_ms"]:10.1f} ms '
                  f'{figures["samples_per_s"]:8.3f} samples/s '
                  f'{figures["peak_memory_mib"]:8.0f} MiB   {first} is {speedup:.2f}x as fast')
    for name, diffs in report['max_abs_difference'].items():
        worst = max(diffs, key=diffs.get)
        print(f'outputs of {name} vs {first}: largest |difference| {diffs[worst]:.2e} '
              f'({worst})')
    if 'onnx' in report:
        onnx = report['onnx']
        print(f"ONNX Runtime {onnx['onnxruntime']['mean_ms']:.1f} ms mean vs PyTorch "
              f"{onnx['pytorch']['mean_ms']:.1f} ms (x{onnx['speedup']:.2f}, "
              f"{onnx['threads']} threads each, inference batch); max abs diff "
              + ', '.join(f'{k} {v:.1e}' for k, v in onnx['max_abs_diff'].items())
              + ' (PyTorch float32 vs float64: '
              + ', '.join(f'{k} {v:.1e}' for k, v in onnx['float32_noise'].items()) + ')')
    if args.profile:
        print(f'profiles in {args.work_dir}/profile_*.txt')
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    if args.baseline is not None:
        worst = max(report['max_abs_difference'][groups[1].variant('fp32')].values())
        if worst > args.atol:
            raise SystemExit(f'the baseline\'s outputs differ from ours by {worst:.2e} > '
                             f'--atol {args.atol:g}')


if __name__ == '__main__':
    main()
