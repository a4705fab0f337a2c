"""Write every test prediction to disk: fused images, masks and overlays."""
import json
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmengine.dist import collect_results, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from mmrisfusion.registry import HOOKS
from mmrisfusion.structures import RISDataSample, batch_input
from mmrisfusion.visualization.draw import (
    GT_COLOR,
    PRED_COLOR,
    draw_ris_panel,
    overlay_mask,
    to_binary_mask,
    to_uint8_image,
)

SUBDIRS = ('fused', 'masks', 'overlays', 'gt_overlays')


def result_stem(sample: RISDataSample) -> str:
    """The file stem of a sample's outputs.

    A fusion-only sample keeps its image's stem, so ``tools/eval_fusion.py`` pairs the fused
    image with ``ir/`` and ``vi/`` by name. A referring sample appends its index: the fused
    image depends on the expression, and one image may carry several expressions.

    Args:
        sample (RISDataSample): The predicted sample (metainfo ``img_name``, ``sample_idx``).

    Returns:
        str: The stem, e.g. ``'00012'`` or ``'00012_37'``.
    """
    meta = sample.metainfo
    if 'img_name' not in meta:
        raise KeyError('a predicted sample has no img_name in its metainfo; the dataset must '
                       'set it (docs/design.md)')
    stem = Path(str(meta['img_name'])).stem
    if getattr(sample, 'text', None) is None:
        return stem
    return f"{stem}_{meta.get('sample_idx', 0)}"


def _write_png(path: Path, rgb_or_gray: np.ndarray) -> None:
    """Write an RGB or single-channel uint8 image, failing loudly."""
    image = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray,
                                                                   cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f'could not write {path}')


@HOOKS.register_module()
class RISResultSaverHook(Hook):
    """Save the fused image, the binary mask and overlays of every test sample.

    Under ``out_dir``: ``fused/STEM.png`` (RGB), ``masks/STEM.png`` (0 or 255),
    ``overlays/STEM.png`` (prediction in red on the fused image) and
    ``gt_overlays/STEM.png`` (ground truth in green on the fused image), STEM as in
    :func:`result_stem`; with ``panels=True`` also ``panels/STEM.png`` (VIS, IR, fused,
    prediction and GT side by side, captioned with the expression); and ``samples.json``,
    one entry per sample (stem, image name, index, expression), gathered from every rank.
    Without a fused image (a plain RIS model) the overlays are drawn on the VIS input. The
    fused image keeps the network's resolution (no resampling, so fusion metrics see what
    the model made); masks are at the original image size, and overlays bring them to the
    fused image's size. Every rank writes its own samples, so in multi-node runs ``out_dir``
    must be on a shared file system.
    ``tools/test.py --out-dir`` adds this hook.

    Args:
        out_dir (str): The output folder.
        progress (bool): Show a progress bar over the test set on the main process.
            Defaults to True.
        panels (bool): Also write the captioned panels (five times an overlay's pixels,
            so off by default). Defaults to False.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, progress: bool = True, panels: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.panels = panels
        self._records: List[dict] = []
        self._bar: Optional[ProgressBar] = None
        self._done = 0
        self._total = 0

    def before_test_epoch(self, runner: Runner) -> None:
        """Create the folders and the progress bar."""
        for sub in SUBDIRS + (('panels',) if self.panels else ()):
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        self._records = []
        self._done = 0
        self._total = len(runner.test_dataloader.dataset)
        self._bar = ProgressBar(self._total) if self.progress and is_main_process() else None

    def after_test_iter(self, runner: Runner, batch_idx: int,
                        data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence[RISDataSample]] = None) -> None:
        """Write the batch's outputs."""
        for index, sample in enumerate(outputs or ()):
            if sample.metainfo.get('text_permuted', False):
                continue  # a mismatched-text pass (MismatchedTextDataset): scored, not saved
            inputs = {} if data_batch is None else data_batch['inputs']
            self._save(sample, batch_input(inputs, 'vis', index),
                       batch_input(inputs, 'ir', index))
        if self._bar is not None and outputs:
            step = min(len(outputs) * get_world_size(), self._total - self._done)
            self._done += step
            if step > 0:
                self._bar.update(step)

    def _save(self, sample: RISDataSample, vis: Optional[np.ndarray],
              ir: Optional[np.ndarray]) -> None:
        """Write one sample's files and remember its entry for ``samples.json``."""
        stem = result_stem(sample)
        fused = getattr(sample, 'pred_fused', None)
        pred = getattr(sample, 'pred_sem_seg', None)
        gt = getattr(sample, 'gt_sem_seg', None)
        base = None
        if fused is not None:
            base = to_uint8_image(fused.data)
            _write_png(self.out_dir / 'fused' / f'{stem}.png', base)
        elif vis is not None:
            base = to_uint8_image(vis)
        if pred is not None:
            mask = to_binary_mask(pred.data)
            _write_png(self.out_dir / 'masks' / f'{stem}.png', mask.astype(np.uint8) * 255)
            if base is not None:
                _write_png(self.out_dir / 'overlays' / f'{stem}.png',
                           overlay_mask(base, mask, PRED_COLOR))
        if gt is not None and base is not None:
            _write_png(self.out_dir / 'gt_overlays' / f'{stem}.png',
                       overlay_mask(base, gt.data, GT_COLOR))
        if self.panels:
            if vis is None or ir is None:
                raise KeyError(f'panels need the VIS and IR inputs of {stem}, but the batch '
                               'has no inputs dict(vis=..., ir=...)')
            _write_png(self.out_dir / 'panels' / f'{stem}.png', draw_ris_panel(
                vis, ir, None if fused is None else fused.data,
                None if pred is None else pred.data, None if gt is None else gt.data,
                getattr(sample, 'text', None)))
        meta = sample.metainfo
        self._records.append(dict(stem=stem, img_name=str(meta.get('img_name')),
                                  sample_idx=int(meta.get('sample_idx', -1)),
                                  text=getattr(sample, 'text', None)))

    def after_test_epoch(self, runner: Runner, metrics: Optional[dict] = None) -> None:
        """Gather every rank's entries and write ``samples.json`` on the main process."""
        if self._bar is not None:
            self._bar.file.write('\n')
        records = collect_results(self._records, self._total, device='cpu')
        if is_main_process():
            unique = {record['stem']: record for record in records}
            with open(self.out_dir / 'samples.json', 'w') as f:
                json.dump(sorted(unique.values(), key=lambda r: r['sample_idx']), f, indent=1)
