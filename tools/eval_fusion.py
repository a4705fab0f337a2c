"""Score a folder of fused images against their infrared and visible sources.

Examples:
    python tools/eval_fusion.py --ir data/tno/ir --vi data/tno/vi --fused results/x/fused
    python tools/eval_fusion.py --ir IR --vi VI --fused F --out scores.json --metrics EN SD VIF

Images are paired by file stem (``01.png`` in --fused with ``01.bmp`` in --ir and --vi);
a name missing from any folder is an error that lists every unmatched name. Each image is
read with OpenCV, converted to gray with OpenCV's luma and rounded, as the evaluator behind
published IVIF tables does (see ``mmrisfusion/evaluation/functional/fusion_metrics.py``).
The metrics work on 8-bit values: images stored in 16 bits (e.g. 12-bit infrared) are
refused unless ``--bit-depth`` says how many bits they hold; their values are then scaled
to 0..255 (OpenCV's own 8-bit reading would keep only the top byte, darkening a 12-bit
image 16 times). The table printed and the JSON written hold the value of every metric for
every image and their means; a value that is not defined (the correlation of a constant
image) is ``null`` in the JSON, listed under ``undefined``, and its metric has no mean.
``SSIM_dr2`` is the published SSIM convention (data_range 2 on 0..255 images),
``SSIM_dr255`` the meaningful one; MI is in nats.
"""
import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from prettytable import PrettyTable


def import_light(name: str) -> ModuleType:
    """A module of mmrisfusion that needs no torch, without importing the mmrisfusion package.

    ``import mmrisfusion.evaluation...`` runs the package's ``__init__`` files, which import
    torch and mmengine: about 2 s of a 3 s command. The module file is found through the
    package's location (``find_spec`` of a top-level package does not execute it) and loaded
    under its own name, so a later import of the package reuses it.

    Args:
        name (str): The module, e.g. ``'mmrisfusion.evaluation.functional.fusion_metrics'``;
            it may import only light modules itself (numpy, OpenCV, the standard library).

    Returns:
        ModuleType: The module.
    """
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec('mmrisfusion')
    if package is None or not package.submodule_search_locations:
        raise SystemExit('error: the mmrisfusion package is not importable: install it or run '
                         'from the repository root with PYTHONPATH=.')
    path = Path(package.submodule_search_locations[0], *name.split('.')[1:])
    spec = importlib.util.spec_from_file_location(name, path.with_suffix('.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fusion_metrics = import_light('mmrisfusion.evaluation.functional.fusion_metrics')
FUSION_METRICS = fusion_metrics.FUSION_METRICS
compute_fusion_metrics = fusion_metrics.compute_fusion_metrics
rgb_to_gray = fusion_metrics.rgb_to_gray

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Fusion-quality metrics of fused images')
    parser.add_argument('--ir', required=True, help='folder of infrared source images')
    parser.add_argument('--vi', required=True, help='folder of visible source images')
    parser.add_argument('--fused', required=True, help='folder of fused images')
    parser.add_argument('--out', help='write per-image values and means to this JSON file')
    parser.add_argument('--metrics', nargs='+', default=list(FUSION_METRICS),
                        choices=list(FUSION_METRICS), metavar='NAME',
                        help=f'metrics to compute (default: all of {list(FUSION_METRICS)})')
    parser.add_argument('--workers', type=int, default=available_cpus(),
                        help='processes scoring images in parallel (default: one per CPU '
                        'core this process may use, here %(default)s; 1 scores in this '
                        'process)')
    parser.add_argument('--bit-depth', type=int, choices=range(8, 17), metavar='N',
                        help='bits used by the images stored in 16 bits (e.g. 12 for 12-bit '
                        'infrared), scaled to 0..255 before scoring; without it such images '
                        'are refused (8-bit images are read as they are)')
    return parser.parse_args()


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def read_gray(path: Path, bit_depth: Optional[int] = None) -> np.ndarray:
    """Read an image as the evaluators do: gray (OpenCV's luma), 0..255, rounded.

    Args:
        path (Path): The image.
        bit_depth (int, optional): Bits used by an image stored in 16 bits; its values are
            scaled by ``255 / (2**bit_depth - 1)``. Defaults to None (refuse such images).

    Returns:
        np.ndarray: (H, W) float64 with integer values in 0..255.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path}: missing or not an image file')
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]  # alpha is dropped, as cv2.IMREAD_COLOR does
    if img.dtype == np.uint8:
        return rgb_to_gray(img, channel_order='bgr')
    if img.dtype != np.uint16:
        raise ValueError(f'{path} holds {img.dtype} values; expected an 8-bit image, or a '
                         '16-bit one with --bit-depth')
    if bit_depth is None:
        raise ValueError(f'{path} is a 16-bit image, and the metrics work on 0..255: give the '
                         'bits it uses with --bit-depth (e.g. 12 for 12-bit infrared in '
                         '16-bit PNGs, 16 for the full range)')
    top = 2**bit_depth - 1
    if int(img.max()) > top:
        raise ValueError(f'{path} has values up to {int(img.max())}, above {top}, the '
                         f'largest {bit_depth}-bit value: check --bit-depth')
    gray = img.astype(np.float32)
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    return np.round(gray * (255.0 / top)).astype(np.float64)


def list_images(folder: str, role: str) -> Dict[str, Path]:
    """Maps file stem -> path for the images in a folder.

    Args:
        folder (str): The folder.
        role (str): What the folder holds, for error messages.

    Returns:
        dict[str, Path]: One path per stem.
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f'--{role} {folder} is not a folder')
    images: Dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if file.stem in images:
            raise ValueError(f'--{role} {folder} has two images with the stem {file.stem!r} '
                             f'({images[file.stem].name}, {file.name}): pairing by stem is '
                             'ambiguous')
        images[file.stem] = file
    if not images:
        raise FileNotFoundError(f'--{role} {folder} holds no images ({", ".join(IMAGE_SUFFIXES)})')
    return images


def pair_images(ir: Dict[str, Path], vi: Dict[str, Path],
                fused: Dict[str, Path]) -> List[Tuple[str, Path, Path, Path]]:
    """Pairs the three folders by stem, refusing any unmatched name.

    Args:
        ir (dict[str, Path]): Infrared images by stem.
        vi (dict[str, Path]): Visible images by stem.
        fused (dict[str, Path]): Fused images by stem.

    Returns:
        list[tuple[str, Path, Path, Path]]: (stem, fused, ir, vi) sorted by stem.
    """
    folders = {'fused': fused, 'ir': ir, 'vi': vi}
    every = set(ir) | set(vi) | set(fused)
    missing = {role: sorted(every - set(images)) for role, images in folders.items()}
    missing = {role: names for role, names in missing.items() if names}
    if missing:
        lines = [f'  missing from --{role}: {", ".join(names)}' for role, names in missing.items()]
        raise ValueError('images do not pair up by file stem:\n' + '\n'.join(lines))
    return [(stem, fused[stem], ir[stem], vi[stem]) for stem in sorted(every)]


def score(task: Tuple[str, Path, Path, Path, Sequence[str], Optional[int]]
          ) -> Tuple[str, Dict[str, float]]:
    """Reads one image triple and computes its metrics.

    Args:
        task (tuple): (stem, fused path, ir path, vi path, metric names, bit depth).

    Returns:
        tuple[str, dict[str, float]]: The stem and its metric values.
    """
    stem, fused_path, ir_path, vi_path, metrics, bit_depth = task
    fused, ir, vi = (read_gray(p, bit_depth) for p in (fused_path, ir_path, vi_path))
    if not fused.shape == ir.shape == vi.shape:
        raise ValueError(f'{stem}: sizes differ: {fused_path} is {fused.shape}, {ir_path} is '
                         f'{ir.shape}, {vi_path} is {vi.shape}')
    return stem, compute_fusion_metrics(fused, ir, vi, metrics)


def main() -> None:
    """Score the fused folder and report."""
    args = parse_args()
    # The metrics allocate and free image-sized buffers per image: reuse them.
    import_light('mmrisfusion.utils.allocator').keep_freed_memory()
    start = time.perf_counter()
    try:
        pairs = pair_images(list_images(args.ir, 'ir'), list_images(args.vi, 'vi'),
                            list_images(args.fused, 'fused'))
        tasks = [(*pair, args.metrics, args.bit_depth) for pair in pairs]
        workers = max(1, min(args.workers, len(tasks)))
        if workers == 1:
            scored = [score(task) for task in tasks]
        else:
            with multiprocessing.Pool(workers) as pool:
                # In order: a failure names the first bad image by stem, whichever worker
                # failed first.
                scored = list(pool.imap(score, tasks))
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f'error: {error}')
    seconds = time.perf_counter() - start
    images = {stem: {name: value if math.isfinite(value) else None
                     for name, value in values.items()} for stem, values in scored}
    undefined = {name: [stem for stem, values in images.items() if values[name] is None]
                 for name in args.metrics}
    undefined = {name: stems for name, stems in undefined.items() if stems}
    means = {name: None if name in undefined else
             float(np.mean([values[name] for values in images.values()]))
             for name in args.metrics}

    def cell(value: Optional[float]) -> str:
        return 'n/a' if value is None else f'{value:.4f}'

    table = PrettyTable(field_names=['image', *args.metrics])
    table.align = 'r'
    for stem, values in images.items():
        table.add_row([stem, *(cell(values[name]) for name in args.metrics)])
    table.add_row(['mean', *(cell(means[name]) for name in args.metrics)])
    print(table.get_string())
    print(f'{len(images)} images scored in {seconds:.2f} s with {workers} worker(s)')
    for name, stems in undefined.items():
        print(f'{name} is not defined for {", ".join(stems)} (e.g. the correlation of a '
              'constant image): n/a, and no mean')
    if args.out:
        result = dict(
            ir=os.path.abspath(args.ir), vi=os.path.abspath(args.vi),
            fused=os.path.abspath(args.fused), metrics=args.metrics,
            reading='cv2.imread (BGR) -> cv2.COLOR_BGR2GRAY -> np.round, values 0..255'
                    + ('' if args.bit_depth is None else
                       f'; 16-bit images scaled by 255 / (2**{args.bit_depth} - 1)'),
            bit_depth=args.bit_depth,
            notes=dict(MI='natural log (nats), MI(F, ir) + MI(F, vi)',
                       SSIM_dr2='SSIM(F, ir) + SSIM(F, vi) with data_range=2 (published '
                                'convention)',
                       SSIM_dr255='SSIM(F, ir) + SSIM(F, vi) with data_range=255'),
            images=images, means=means, undefined=undefined, seconds=seconds)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, 'w') as file:
            json.dump(result, file, indent=1, allow_nan=False)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
