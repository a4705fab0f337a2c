"""Referring-segmentation metric (LAVT / RIS-FUSION definitions)."""
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from prettytable import PrettyTable

from mmrisfusion.registry import METRICS
from mmrisfusion.structures import padding_of, sample_name, undo_flip, unpad


def _mask(value: Any, key: str, name: str) -> torch.Tensor:
    """The (H, W) label map of a ``PixelData`` field (a dict after ``to_dict()``)."""
    data = value['data'] if isinstance(value, Mapping) else getattr(value, 'data', value)
    data = torch.as_tensor(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f"{name}: '{key}' must be a (1, H, W) or (H, W) label map, got shape "
                         f'{tuple(data.shape)}')
    return data


def _iou(intersection: int, union: int) -> float:
    """Per-sample IoU, 0 when the union is empty (docs/metrics.md, as LAVT defines it)."""
    return intersection / union if union > 0 else 0.0


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks by :class:`RISMetric`'s rule (0 when the union is empty),
    for tools that score saved masks one by one.

    Args:
        pred (np.ndarray): Boolean mask.
        gt (np.ndarray): Boolean mask of the same shape.

    Returns:
        float: The IoU in [0, 1].
    """
    return _iou(int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum()))


def _mean_class_iou(pooled: Sequence[Tuple[int, int]]) -> float:
    """Mean over classes of pooled I / U x 100, leaving out classes whose union is empty
    (the published "cIoU"; 0 when every union is empty)."""
    ious = [inter / union for inter, union in pooled if union > 0]
    return 100.0 * sum(ious) / len(ious) if ious else 0.0


def _ratio(num: int, den: int) -> float:
    """num / den x 100, 0 when the denominator is 0."""
    return 100.0 * num / den if den > 0 else 0.0


@METRICS.register_module()
class RISMetric(BaseMetric):
    """Referring image segmentation: mIoU, oIoU, precision@t, foreground pixel P/R/F1 and the
    published background/foreground "cIoU".

    Each data sample's ``pred_sem_seg`` (class indices, the argmax the model already took)
    is compared with its ``gt_sem_seg`` at the same resolution; class 1 is the referred
    object, 0 the rest, and GT pixels equal to ``ignore_index`` count for nothing. The
    models remove the padding from their predictions and undo a test-time flip, so the GT
    (padded by the pipeline and the data preprocessor) is cropped by the metainfo's
    ``img_padding_size``/``padding_size`` and flipped back likewise.
    ``process()`` keeps five integers per sample (intersection, union, predicted and GT
    foreground areas, valid pixels) and a flag, so results stay small when gathered across
    ranks; it reads them back from the device once per batch, not once per sample.

    Reported values (all x 100, plain floats):

    - ``mIoU``: mean over samples of IoU = |P and G| / |P or G|, where a sample with an
      empty union (empty prediction and empty GT) has IoU 0, as the published evaluators
      define it (docs/metrics.md#referring-segmentation-metrics);
    - ``oIoU``: sum of intersections / sum of unions (the "overall IoU", called cIoU in
      most RIS papers; not RIS-FUSION's background/foreground average);
    - ``P@t`` for each threshold: percentage of samples with IoU >= t;
    - ``pixel_precision``, ``pixel_recall``, ``pixel_F1``: of the foreground pixels, pooled
      over the dataset (sum I / sum |P|, sum I / sum |G|, their harmonic mean);
    - ``cIoU_bgfg``: what RIS-FUSION's published ``test.py`` prints as "cIoU"
      (docs/metrics.md#the-published-ciou): over the pixels of all samples pooled, the IoU
      of the background, ``sum I_bg / sum U_bg``, and of the foreground (oIoU), averaged
      over the classes whose pooled union is not empty. The background of a sample is its
      valid pixels outside the mask, so ``I_bg = N - U_fg`` and ``U_bg = N - I_fg`` with
      ``N`` its valid pixels. The background is most of each image, so this sits well
      above oIoU: compare it only with the published "cIoU", never with oIoU.

    Text sensitivity: with ``text_sensitivity=True`` the metric expects the evaluation to
    also run each sample with a mismatched expression (another sample's text) and to mark
    those outputs with metainfo ``{mismatch_key}=True``. The marked samples are kept apart:
    all metrics above come from the unmarked ones only, and the metric adds
    ``mIoU_mismatched``, ``oIoU_mismatched`` and ``text_sensitivity_drop`` = ``mIoU -
    mIoU_mismatched`` (large for a model that reads the text, near 0 for one that only
    segments salient objects). Producing the mismatched pass is the test loop's or the
    model's job, not the metric's. With ``text_sensitivity=False`` the flag is not read.

    Args:
        iou_thrs (Sequence[float]): Thresholds of the precision@t values.
            Defaults to (0.5, 0.6, 0.7, 0.8, 0.9).
        ignore_index (int): GT value of pixels to ignore. Defaults to 255.
        text_sensitivity (bool): Whether to split off and report the mismatched-text
            samples. Defaults to False.
        mismatch_key (str): Metainfo key marking a mismatched-text sample.
            Defaults to 'text_permuted'.
        collect_device (str): Device used to collect results across ranks, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names (e.g. 'ris'); None for none, as
            mmseg's IoUMetric. Defaults to None.
        collect_dir (str, optional): Directory for collecting results across ranks on the
            CPU. Defaults to None.
    """

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 ignore_index: int = 255,
                 text_sensitivity: bool = False,
                 mismatch_key: str = 'text_permuted',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        thrs = [float(t) for t in iou_thrs]
        if not thrs or any(not 0 < t <= 1 for t in thrs):
            raise ValueError(f'RISMetric: iou_thrs must be thresholds in (0, 1], got '
                             f'{list(iou_thrs)}')
        self.iou_thrs = thrs
        self.ignore_index = ignore_index
        self.text_sensitivity = text_sensitivity
        self.mismatch_key = mismatch_key

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Counts intersection, union, foreground and valid areas of each sample.

        The counts of the batch stay on the device until one read at the end (a host sync
        per sample would stall a GPU evaluation); labels other than 0 and 1 are counted
        there too and reported with the sample's name.

        Args:
            data_batch (Any): The collated batch from the dataloader (not used).
            data_samples (Sequence[Any]): The model's outputs, as dicts (what mmengine's
                ``Evaluator`` passes) or data samples, with ``pred_sem_seg`` and
                ``gt_sem_seg``.
        """
        names, flags, counts, labels = [], [], [], []
        for index, sample in enumerate(data_samples):
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            name = sample_name(sample, index)
            pred, gt = self._aligned_masks(sample, name)
            valid = gt != self.ignore_index
            pred_fg = (pred == 1) & valid
            gt_fg = (gt == 1) & valid
            # Labels outside {0, 1} on valid pixels, counted here and reported after the read.
            bad_pred = ((pred != 0) & (pred != 1) & valid).sum()
            bad_gt = ((gt != 0) & (gt != 1) & valid).sum()
            counts.append(torch.stack([(pred_fg & gt_fg).sum(), (pred_fg | gt_fg).sum(),
                                       pred_fg.sum(), gt_fg.sum(), valid.sum(), bad_pred,
                                       bad_gt]))
            names.append(name)
            labels.append((pred, gt, valid))
            flags.append(bool(sample.get(self.mismatch_key, False)) if (
                self.text_sensitivity) else False)
        if not counts:
            return
        rows = torch.stack([c.to(counts[0].device) for c in counts]).cpu().tolist()
        for name, row, (pred, gt, valid), mismatched in zip(names, rows, labels, flags):
            for key, bad, values in (('pred_sem_seg', row[5], pred),
                                     ('gt_sem_seg', row[6], gt)):
                if bad:
                    raise ValueError(
                        f"{name}: '{key}' must hold class indices 0 (rest) and 1 (referred "
                        f'object) outside ignore_index={self.ignore_index}, found values '
                        f'{torch.unique(values[valid]).tolist()[:10]}')
            self.results.append((*row[:5], mismatched))

    def _aligned_masks(self, sample: Mapping, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """The prediction and the GT of one sample in one frame (GT unpadded, unflipped)."""
        for key in ('pred_sem_seg', 'gt_sem_seg'):
            if key not in sample:
                raise KeyError(f"{name}: RISMetric needs '{key}' in each data sample; "
                               f'the sample has {sorted(sample)}')
        pred = _mask(sample['pred_sem_seg'], 'pred_sem_seg', name)
        gt = _mask(sample['gt_sem_seg'], 'gt_sem_seg', name).to(pred.device)
        if pred.shape != gt.shape:
            # The model removed the padding from its prediction; remove it from the GT.
            unpadded = unpad(gt, sample)
            if unpadded.shape != pred.shape:
                raise ValueError(
                    f'{name}: pred_sem_seg is {tuple(pred.shape)} but gt_sem_seg is '
                    f'{tuple(gt.shape)} (padding {padding_of(sample)}); compare them at '
                    "one resolution (e.g. test_cfg.output_shape='img_shape' when the "
                    'pipeline resizes the mask)')
            gt = unpadded
        return pred, undo_flip(gt, sample)  # the model undid a test-time flip on its output

    def _summarise(self, results: List[tuple]) -> Dict[str, float]:
        """All metrics of one group of per-sample counts."""
        counts = np.array([r[:5] for r in results], dtype=np.int64)
        inter, union, pred_area, gt_area, valid = counts.sum(axis=0).tolist()
        ious = np.array([_iou(i, u) for i, u in counts[:, :2].tolist()])
        metrics = {'mIoU': float(100.0 * ious.mean()), 'oIoU': _ratio(inter, union)}
        for thr in self.iou_thrs:
            metrics[f'P@{thr:g}'] = float(100.0 * np.mean(ious >= thr))
        precision = _ratio(inter, pred_area)
        recall = _ratio(inter, gt_area)
        metrics['pixel_precision'] = precision
        metrics['pixel_recall'] = recall
        metrics['pixel_F1'] = (2 * precision * recall / (precision + recall)
                               if precision + recall > 0 else 0.0)
        metrics['cIoU_bgfg'] = _mean_class_iou(((valid - union, valid - inter),
                                                (inter, union)))
        return metrics

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Reduces the per-sample counts of all ranks to the metrics.

        Args:
            results (list[tuple]): (intersection, union, pred area, gt area, valid
                pixels, mismatched) of every sample.

        Returns:
            dict[str, float]: The metrics, as plain floats.
        """
        matched = [r for r in results if not r[5]]
        mismatched = [r for r in results if r[5]]
        if not matched:
            raise ValueError('RISMetric got no samples' + (
                f' without the {self.mismatch_key} mark' if mismatched else '') +
                ': nothing to evaluate')
        metrics = self._summarise(matched)
        if self.text_sensitivity:
            if not mismatched:
                raise ValueError(
                    f'RISMetric(text_sensitivity=True) got no sample marked with metainfo '
                    f'{self.mismatch_key}=True: the evaluation must also run the model with '
                    'mismatched expressions and mark those outputs')
            other = self._summarise(mismatched)
            metrics['mIoU_mismatched'] = other['mIoU']
            metrics['oIoU_mismatched'] = other['oIoU']
            metrics['text_sensitivity_drop'] = metrics['mIoU'] - other['mIoU']
        table = PrettyTable(field_names=['samples', *metrics])
        table.add_row([len(matched), *(f'{value:.2f}' for value in metrics.values())])
        print_log('\nreferring segmentation:\n' + table.get_string(), logger='current')
        return metrics
