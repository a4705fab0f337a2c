"""Does a model read the side words? Predict with "left" and "right" swapped and compare.

For the absolute-position/ordinal expressions of a synthetic MM-RIS split ("the leftmost
dog", "the second warm dog from the right"), the model predicts a mask for each expression
and for the same expression with its horizontal direction words swapped
(``swap_direction_words``, what the training flip does to the words). A model that uses the
side words gives different masks, and the swapped expression scores lower against the
ground truth; one that segments every object of the named category gives the same mask
twice (IoU between the two near 1) and the same score.

Example:
    python tools/analysis_tools/side_swap.py CONFIG CHECKPOINT \
        data/synthetic_mmris/mm_ris_test.parquet --rows 40
"""
import argparse
from typing import Dict, Sequence

import numpy as np
import pyarrow.parquet as pq

from mmrisfusion.apis import inference_model, init_model
from mmrisfusion.datasets.synthetic_mmris import expression_kind
from mmrisfusion.datasets.transforms.loading import decode_image, load_npy_mask
from mmrisfusion.datasets.transforms.transforms import swap_direction_words
from mmrisfusion.evaluation import mask_iou


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='its weights')
    parser.add_argument('parquet', help='a synthetic MM-RIS split (masks are the GT)')
    parser.add_argument('--rows', type=int, default=40,
                        help='position/ordinal rows to use, the first ones (default 40)')
    return parser.parse_args()


def swap_scores(preds: Sequence[np.ndarray], swapped: Sequence[np.ndarray],
                gts: Sequence[np.ndarray]) -> Dict[str, float]:
    """Mean IoUs of the masks for the expressions and for their side-swapped twins.

    Args:
        preds (Sequence[np.ndarray]): Boolean masks predicted for the expressions.
        swapped (Sequence[np.ndarray]): Boolean masks for the swapped expressions.
        gts (Sequence[np.ndarray]): Boolean ground-truth masks of the expressions.

    Returns:
        dict: ``overlap`` (IoU between the two predictions), ``iou_text`` and
        ``iou_swapped`` (each against the ground truth), means over the rows.
    """
    if not len(preds) == len(swapped) == len(gts) > 0:
        raise ValueError(f'swap_scores needs as many masks of each kind, at least one; got '
                         f'{len(preds)}, {len(swapped)}, {len(gts)}')
    return dict(overlap=float(np.mean([mask_iou(p, s) for p, s in zip(preds, swapped)])),
                iou_text=float(np.mean([mask_iou(p, g) for p, g in zip(preds, gts)])),
                iou_swapped=float(np.mean([mask_iou(s, g) for s, g in zip(swapped, gts)])))


def main() -> None:
    """Predict both ways and print the three means."""
    args = parse_args()
    rows = [row for row in pq.read_table(args.parquet).to_pylist()
            if expression_kind(row['question']) == 'position'][:args.rows]
    if not rows:
        raise SystemExit(f'{args.parquet} has no absolute-position/ordinal expression')
    model = init_model(args.config, args.checkpoint, device='cpu')
    vis = [decode_image(row['visible_image'], gray=False, backend='cv2') for row in rows]
    ir = [decode_image(row['infrared_image'], gray=True, backend='cv2') for row in rows]
    texts = [row['question'] for row in rows]
    preds = inference_model(model, vis, ir, texts)
    swapped = inference_model(model, vis, ir,
                              [swap_direction_words(t, 'horizontal') for t in texts])
    scores = swap_scores([r.mask.astype(bool) for r in preds],
                         [r.mask.astype(bool) for r in swapped],
                         [load_npy_mask(row['segmentation']) > 0 for row in rows])
    print(f'{len(rows)} position/ordinal rows: IoU between the masks for the expression and '
          f'for its left/right swap {scores["overlap"]:.3f}; IoU with the ground truth '
          f'{scores["iou_text"]:.3f} (expression) vs {scores["iou_swapped"]:.3f} (swapped)')


if __name__ == '__main__':
    main()
