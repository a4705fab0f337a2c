"""Time ``tools/eval_fusion.py`` as a user runs it: whole commands, process start included.

Example (the RoadScene test split, our code against the commit before the speed-up)::

    python tools/analysis_tools/benchmark_eval_fusion.py IVIF_ROOT/roadscene \
        --list test50.txt --baseline HEAD~1 --repeat 5

Two fusions of every listed IR/VIS pair are written as 8-bit PNGs to a temporary folder,
``mean`` (``round((IR + VIS) / 2)``) and ``max`` (``max(IR, VIS)``), from the gray images
the evaluator reads; one *run* is two ``eval_fusion.py`` commands, one per fusion (2 x N
triples, every metric). Runs of the working tree's tool and, with ``--baseline``, of another
revision's (exported with ``git archive``) alternate, so both see the same machine load;
their per-image values must agree (``--rtol``), or the tool exits with status 1. Reported:
the median wall and CPU (user + sys of the child processes) seconds of a run, the ratio
baseline / current, and, with ``--published-seconds`` (a time measured separately for the
published evaluator on the same triples), the ratio to that. ``uptime`` is printed first and
last: on a loaded machine wall times are noisy, CPU times much less so.
"""
import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
from revision import REPO_ROOT, export_revision

FUSIONS = ('mean', 'max')


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data', help='a folder with ir/ and vi/ images of the same names')
    parser.add_argument('--list', help='file (in DATA, or a path) naming the pairs to use, one '
                        'per line (default: every image of ir/)')
    parser.add_argument('--baseline', metavar='REV',
                        help='git revision whose eval_fusion.py runs alternately with ours')
    parser.add_argument('--repeat', type=int, default=3, help='runs of each variant')
    parser.add_argument('--workers', type=int, default=1,
                        help='eval_fusion.py --workers (default: 1, as the published one)')
    parser.add_argument('--published-seconds', type=float,
                        help='wall seconds of the published evaluator on the same 2 x N '
                        'triples, measured separately, to print the ratio to it')
    parser.add_argument('--rtol', type=float, default=1e-9,
                        help='largest relative difference allowed between the variants\' '
                        'values (default: 1e-9)')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args()


def uptime() -> str:
    """The load averages, as ``uptime`` prints them."""
    return 'load average: ' + ', '.join(f'{v:.2f}' for v in os.getloadavg())


def write_triples(data: Path, names: List[str], dest: Path) -> None:
    """Link the listed sources into ``dest/ir``, ``dest/vi``; write the fusions beside them."""
    spec = importlib.util.spec_from_file_location('_eval_fusion',
                                                  REPO_ROOT / 'tools' / 'eval_fusion.py')
    eval_fusion = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_fusion)  # the evaluator's own reading
    read_gray = eval_fusion.read_gray
    for sub in ('ir', 'vi', *FUSIONS):
        (dest / sub).mkdir(parents=True)
    for name in names:
        for sub in ('ir', 'vi'):
            source = data / sub / name
            if not source.is_file():
                raise SystemExit(f'{source} does not exist (named in the pair list)')
            (dest / sub / name).symlink_to(source.resolve())
        ir, vis = read_gray(data / 'ir' / name), read_gray(data / 'vi' / name)
        stem = Path(name).stem
        cv2.imwrite(str(dest / 'mean' / f'{stem}.png'), np.round((ir + vis) / 2).astype(np.uint8))
        cv2.imwrite(str(dest / 'max' / f'{stem}.png'), np.maximum(ir, vis).astype(np.uint8))


def run_once(root: Path, triples: Path, out_dir: Path, workers: int) -> Dict[str, float]:
    """One run: ``eval_fusion.py`` of the tree at ``root`` on both fusions, timed whole."""
    env = dict(os.environ, PYTHONPATH=str(root))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for fusion in FUSIONS:
        cmd = [sys.executable, str(root / 'tools' / 'eval_fusion.py'), '--ir', str(triples / 'ir'),
               '--vi', str(triples / 'vi'), '--fused', str(triples / fusion),
               '--workers', str(workers), '--out', str(out_dir / f'{fusion}.json')]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
        if proc.returncode != 0:
            raise SystemExit(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dict(wall_s=wall, cpu_s=cpu)


def max_relative_difference(ours: Path, theirs: Path) -> float:
    """The largest relative difference of any metric of any image between two runs."""
    worst = 0.0
    for fusion in FUSIONS:
        a = json.loads((ours / f'{fusion}.json').read_text())['images']
        b = json.loads((theirs / f'{fusion}.json').read_text())['images']
        if a.keys() != b.keys():
            raise SystemExit(f'{fusion}: the variants scored different images')
        for stem, values in a.items():
            for name, value in values.items():
                other = b[stem][name]
                if np.isnan(value) and np.isnan(other):
                    continue
                scale = max(abs(value), abs(other), 1e-12)
                worst = max(worst, abs(value - other) / scale)
    return worst


def median_of(runs: List[Dict[str, float]], key: str) -> float:
    """The median of one figure over the runs."""
    return statistics.median(run[key] for run in runs)


def main() -> None:
    """Prepare the triples, alternate the variants, check their values and report."""
    args = parse_args()
    data = Path(args.data)
    if args.list is not None:
        list_file = Path(args.list) if Path(args.list).is_file() else data / args.list
        names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in (data / 'ir').iterdir())
    print(f'{platform.node()}: {os.cpu_count()} CPUs, {uptime()}')
    with tempfile.TemporaryDirectory(prefix='bench_eval_fusion_') as tmp:
        tmp = Path(tmp)
        write_triples(data, names, tmp / 'triples')
        variants = {'current': REPO_ROOT}
        if args.baseline is not None:
            (tmp / 'baseline').mkdir()
            variants['baseline'] = export_revision(args.baseline, str(tmp / 'baseline'))
        runs: Dict[str, list] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, root in variants.items():
                out_dir = tmp / f'out_{name}'
                out_dir.mkdir(exist_ok=True)
                runs[name].append(run_once(root, tmp / 'triples', out_dir, args.workers))
        report = dict(pairs=len(names), triples_per_run=len(FUSIONS) * len(names),
                      repeat=args.repeat, workers=args.workers, load_end=uptime(),
                      baseline=args.baseline)
        for name, variant_runs in runs.items():
            report[name] = dict(wall_s=median_of(variant_runs, 'wall_s'),
                                cpu_s=median_of(variant_runs, 'cpu_s'), runs=variant_runs)
        print(f'{len(FUSIONS)} x {len(names)} triples per run, {args.repeat} runs each, '
              f'medians:')
        for name in variants:
            print(f'  {name:<9} wall {report[name]["wall_s"]:7.2f} s   '
                  f'CPU {report[name]["cpu_s"]:7.2f} s')
        if 'baseline' in variants:
            diff = max_relative_difference(tmp / 'out_current', tmp / 'out_baseline')
            report['max_relative_difference'] = diff
            speedup = {key: report['baseline'][key] / report['current'][key]
                       for key in ('wall_s', 'cpu_s')}
            report['speedup'] = speedup
            print(f'  baseline / current: wall {speedup["wall_s"]:.2f}x, CPU '
                  f'{speedup["cpu_s"]:.2f}x; largest relative difference of a value '
                  f'{diff:.2e}')
        if args.published_seconds is not None:
            report['published_wall_s'] = args.published_seconds
            print(f'  published ({args.published_seconds:.1f} s) / current wall: '
                  f'{args.published_seconds / report["current"]["wall_s"]:.1f}x')
        print(f'at the end: {uptime()}')
    if args.out is not None:
        Path(args.out).write_text(json.dumps(report, indent=2))
    if report.get('max_relative_difference', 0.0) > args.rtol:
        raise SystemExit(f'the variants disagree: relative difference '
                         f'{report["max_relative_difference"]:.2e} > --rtol {args.rtol:g}')


if __name__ == '__main__':
    main()
