"""Fusion-quality metric for mmengine's evaluation loops."""
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from prettytable import PrettyTable

from mmrisfusion.registry import METRICS
from mmrisfusion.structures import batch_input, crop_to, padding_of, sample_name, undo_flip

from ..functional.fusion_metrics import FUSION_METRICS, compute_fusion_metrics, rgb_to_gray


def _batch_source(data_batch: Any, modality: str, index: int, name: str) -> torch.Tensor:
    """The ``index``-th source image of one modality from a collated batch."""
    inputs = data_batch.get('inputs') if isinstance(data_batch, Mapping) else None
    image = batch_input(inputs, modality, index)
    if image is None:
        raise KeyError(
            f"{name}: FusionMetric reads the source images from data_batch['inputs']"
            f"['{modality}'] (uint8 (C, H, W), what PackRISInputs packs), but the batch has no "
            f'such entry for sample {index}; got inputs of type {type(inputs).__name__}')
    return image


def _within_padding(shape: tuple, source_shape: tuple, padding: tuple) -> bool:
    """Whether the sources are the (h, w) image plus at most the sample's padding.

    ``padding`` (left, right, top, bottom) may include the batch padding the preprocessor
    added later, which the sources in the batch do not have; left and top are exact.
    """
    left, right, top, bottom = padding
    extra_h = source_shape[0] - top - shape[0]
    extra_w = source_shape[1] - left - shape[1]
    return 0 <= extra_h <= bottom and 0 <= extra_w <= right


def _to_gray(image: Any, what: str, name: str) -> np.ndarray:
    """(C, H, W) uint8 RGB or gray tensor -> (H, W) float gray on the 0..255 scale."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(
        image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f'{name}: the {what} image must be a uint8 (C, H, W) array with 1 or '
                         f'3 channels (the unnormalised pipeline output), got dtype '
                         f'{array.dtype} and shape {tuple(array.shape)}')
    return rgb_to_gray(np.ascontiguousarray(array.transpose(1, 2, 0)), channel_order='rgb')


@METRICS.register_module()
class FusionMetric(BaseMetric):
    """Fusion-quality metrics of the fused images (EN, SD, SF, AG, MI, SCD, VIF, Qabf, ...).

    Where the images come from:

    - the fused image from each data sample's ``pred_fused`` (``PixelData``, ``data`` of
      shape (3, H, W), RGB in [0, 1], as ``RISFusion.predict`` returns it); it is quantised
      to 8 bits (``round(255 x)``) as if saved as a PNG file;
    - the two sources from the same batch's ``data_batch['inputs']['vis']`` and
      ``['ir']``: the uint8 (C, H, W) images that ``PackRISInputs`` packed (before the data
      preprocessor normalises them, which builds new tensors and leaves these untouched).
      So the fused image is scored at the resolution the network saw, against exactly the
      images it fused, for parquet rows (bytes) and image folders alike.

    All three are converted to gray with OpenCV's luma and rounded (see
    :mod:`mmrisfusion.evaluation.functional.fusion_metrics` for every definition). The
    models remove the padding from ``pred_fused`` and undo a test-time flip, so the same is
    done to the sources: pipeline padding is cropped at the metainfo's
    ``img_padding_size``/``padding_size`` (left, top) offset, and ``flip`` is undone. A
    fused image at ``ori_shape`` while the sources are at ``img_shape`` (a fusion model that
    resized its output back to the original size) is resized back to the sources' size
    (bilinear); any other size mismatch is an error naming the sample.

    ``process()`` keeps one small dict of floats per image (plus its name);
    ``compute_metrics()`` returns the means, which the evaluator prefixes with
    ``fusion/`` (e.g. ``fusion/EN``, ``fusion/SSIM_dr2``) so they cannot collide with the
    RIS metrics. A metric undefined for an image (CC of a constant image) is NaN and makes
    its mean NaN.

    Args:
        metrics (Sequence[str], optional): Names from
            :data:`~mmrisfusion.evaluation.functional.FUSION_METRICS` ('EN', 'SD', 'SF',
            'AG', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM_dr2', 'SSIM_dr255', 'PSNR', 'CC',
            'MSE', 'Nabf'); None for all. ``SSIM_dr2`` is the published convention
            (data_range 2 on 0..255 images), ``SSIM_dr255`` the meaningful one.
            Defaults to None.
        fused_key (str): The data-sample field holding the fused image.
            Defaults to 'pred_fused'.
        collect_device (str): Device used to collect results across ranks, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names; None means 'fusion'.
            Defaults to None.
        collect_dir (str, optional): Directory for collecting results across ranks on the
            CPU. Defaults to None.
    """

    default_prefix: Optional[str] = 'fusion'

    def __init__(self,
                 metrics: Optional[Sequence[str]] = None,
                 fused_key: str = 'pred_fused',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        names = list(FUSION_METRICS) if metrics is None else list(metrics)
        unknown = [name for name in names if name not in FUSION_METRICS]
        if unknown or not names:
            raise ValueError(f'FusionMetric: unknown or no metric names {unknown or names}; '
                             f'choose from {list(FUSION_METRICS)}')
        self.metric_names = names
        self.fused_key = fused_key

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Scores each fused image of the batch against its two source images.

        Args:
            data_batch (Any): The collated batch from the dataloader (its ``inputs`` hold
                the uint8 source images).
            data_samples (Sequence[Any]): The model's outputs, as dicts (what mmengine's
                ``Evaluator`` passes) or data samples.
        """
        for index, sample in enumerate(data_samples):
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            if sample.get('text_permuted', False):
                continue  # a mismatched-text pass (MismatchedTextDataset) re-fuses a scored pair
            name = sample_name(sample, index)
            if self.fused_key not in sample:
                raise KeyError(f'{name}: FusionMetric needs the fused image in the data '
                               f"sample's '{self.fused_key}' field; the sample has "
                               f'{sorted(sample)}')
            fused = sample[self.fused_key]
            fused = fused['data'] if isinstance(fused, Mapping) else fused
            if not isinstance(fused, torch.Tensor):
                fused = torch.as_tensor(np.asarray(fused))
            if fused.ndim != 3 or fused.shape[0] != 3 or not fused.is_floating_point():
                raise ValueError(f'{name}: the fused image must be a float (3, H, W) tensor '
                                 f'in [0, 1], got dtype {fused.dtype} and shape '
                                 f'{tuple(fused.shape)}')
            fused, vis, ir = self._align(
                fused.detach().float().cpu(), _batch_source(data_batch, 'vis', index, name),
                _batch_source(data_batch, 'ir', index, name), sample, name)
            fused8 = torch.round(fused.clamp(0, 1) * 255).to(torch.uint8)
            values = compute_fusion_metrics(
                _to_gray(fused8, 'fused', name), _to_gray(ir, 'infrared', name),
                _to_gray(vis, 'visible', name), self.metric_names)
            self.results.append(dict(img_name=name, **values))

    @staticmethod
    def _align(fused: torch.Tensor, vis: Any, ir: Any, sample: dict,
               name: str) -> Tuple[torch.Tensor, Any, Any]:
        """Brings the sources (and, if resized, the fused image) to one geometry."""
        shape = tuple(fused.shape[-2:])
        source_shape = tuple(vis.shape[-2:])
        if tuple(ir.shape[-2:]) != source_shape:
            raise ValueError(f'{name}: the visible image is {source_shape} but the infrared '
                             f'one is {tuple(ir.shape[-2:])}')
        ori_shape = tuple(sample.get('ori_shape', ()))[:2]
        img_shape = tuple(sample.get('img_shape', ()))[:2]
        if shape != source_shape:
            if shape == ori_shape and source_shape == img_shape:
                # a fusion model that resized its output back to the original size
                fused = F.interpolate(fused[None], size=source_shape, mode='bilinear',
                                      align_corners=False)[0]
            elif _within_padding(shape, source_shape, padding_of(sample)):
                # pipeline padding, which the model removed from its output
                vis, ir = crop_to(vis, shape, sample), crop_to(ir, shape, sample)
            else:
                raise ValueError(
                    f'{name}: the fused image is {shape} but the source images are '
                    f'{source_shape} (img_shape {img_shape or "unknown"}, ori_shape '
                    f'{ori_shape or "unknown"}, padding {padding_of(sample)}); FusionMetric '
                    'scores the fused image at the resolution of the images it fused')
        return fused, undo_flip(vis, sample), undo_flip(ir, sample)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Averages the per-image values.

        Args:
            results (list[dict]): One dict per image from all ranks, with ``img_name`` and a
                float per metric.

        Returns:
            dict[str, float]: The mean of each metric, as plain floats.
        """
        if not results:
            raise ValueError('FusionMetric got no images: did the evaluation loop run on an '
                             'empty dataset?')
        means = {name: float(np.mean([result[name] for result in results]))
                 for name in self.metric_names}
        table = PrettyTable(field_names=['images', *means])
        table.add_row([len(results), *(f'{value:.4f}' for value in means.values())])
        print_log('\nfusion quality (means over images):\n' + table.get_string(),
                  logger='current')
        return means
