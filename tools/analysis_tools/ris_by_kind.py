"""Referring-segmentation scores per kind of expression on the synthetic MM-RIS test split.

Reads what ``tools/test.py --out-dir DIR`` saved (``samples.json`` and ``masks/``) and the
ground truth of the parquet file it tested, sorts the expressions by what singles their
target out (``mmrisfusion.datasets.synthetic_mmris.expression_kind``: category, colour,
temperature, size, relation, absolute position/ordinal) and prints n, mIoU and P@0.5 per
kind (IoU as ``RISMetric`` computes it: an empty union scores 0).

Example:
    python tools/analysis_tools/ris_by_kind.py work_dirs/demo/results \
        data/synthetic_mmris/mm_ris_test.parquet --out work_dirs/demo/results/by_kind.json
"""
import argparse
import io
import json
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pyarrow.parquet as pq

from mmrisfusion.datasets.synthetic_mmris import EXPRESSION_KINDS, expression_kind
from mmrisfusion.evaluation import mask_iou

LABELS = dict(category='category', colour='colour', temperature='temperature', size='size',
              relation='relation', position='absolute position/ordinal')


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results', help='the --out-dir of tools/test.py')
    parser.add_argument('parquet', help='the tested parquet file (its masks are the GT)')
    parser.add_argument('--out', help='also write the table as JSON here')
    return parser.parse_args()


def scores_by_kind(results: Path, parquet: Path) -> Dict[str, dict]:
    """n, mIoU and P@0.5 (x 100) per expression kind, and over all samples ('all').

    Args:
        results (Path): Folder with ``samples.json`` and ``masks/STEM.png``.
        parquet (Path): The tested MM-RIS parquet file.

    Returns:
        dict: kind -> ``dict(n=..., mIoU=..., P@0.5=...)``, kinds without samples left out.
    """
    samples = json.loads((results / 'samples.json').read_text())
    table = pq.read_table(str(parquet), columns=['question', 'segmentation'])
    questions = table.column('question').to_pylist()
    gts = table.column('segmentation').to_pylist()
    ious: Dict[str, List[float]] = {kind: [] for kind in EXPRESSION_KINDS}
    for sample in samples:
        idx = sample['sample_idx']
        if sample['text'] != questions[idx]:
            raise ValueError(f'{results}/samples.json: sample {idx} is {sample["text"]!r} but '
                             f'row {idx} of {parquet} is {questions[idx]!r}')
        path = results / 'masks' / f'{sample["stem"]}.png'
        pred = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if pred is None:
            raise FileNotFoundError(f'{path} is missing or not an image')
        gt = np.load(io.BytesIO(gts[idx])).astype(bool)
        if gt.shape != pred.shape:
            raise ValueError(f'{path}: mask {pred.shape} but the GT of row {idx} is {gt.shape}')
        ious[expression_kind(questions[idx])].append(mask_iou(pred > 127, gt))
    ious['all'] = [iou for kind in EXPRESSION_KINDS for iou in ious[kind]]
    return {kind: {'n': len(v), 'mIoU': 100 * float(np.mean(v)),
                   'P@0.5': 100 * float(np.mean(np.asarray(v) >= 0.5))}
            for kind, v in ious.items() if v}


def main() -> None:
    """Print the table (markdown) and optionally save it."""
    args = parse_args()
    scores = scores_by_kind(Path(args.results), Path(args.parquet))
    print('| expressions | n | mIoU | P@0.5 |\n|---|---:|---:|---:|')
    for kind, row in scores.items():
        print(f'| {LABELS.get(kind, kind)} | {row["n"]} | {row["mIoU"]:.1f} | '
              f'{row["P@0.5"]:.1f} |')
    if args.out:
        Path(args.out).write_text(json.dumps(scores, indent=1))


if __name__ == '__main__':
    main()
