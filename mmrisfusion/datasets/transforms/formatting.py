"""Pack a VIS/IR/text sample into model inputs and an :class:`RISDataSample`."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData

from mmrisfusion.registry import TRANSFORMS
from mmrisfusion.structures import RISDataSample


def _chw(img: np.ndarray) -> torch.Tensor:
    """An (H, W) or (H, W, C) uint8 array as a contiguous (C, H, W) tensor."""
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackRISInputs(BaseTransform):
    """Pack the images into ``inputs`` and everything else into a data sample.

    Required keys: ``vis`` and ``ir``.

    Optional keys: ``gt_seg_map`` (-> ``gt_sem_seg``, int64 (1, H, W)), ``text``,
    ``token_ids`` and ``token_mask`` (-> int64 tensors (T,)), and every key of
    ``meta_keys`` present (-> metainfo). ``pad_shape`` defaults to ``img_shape``.

    Added keys: ``inputs`` (``dict(vis=uint8 (3, H, W), ir=uint8 (C, H, W))``) and
    ``data_samples`` (:class:`RISDataSample`); all other keys are dropped. Fusion-only
    samples (no mask, no text) pack the same way with fewer fields.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo. Defaults to
            ('img_name', 'sample_idx', 'source', 'vis_path', 'ir_path', 'seg_map_path',
            'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip', 'flip_direction',
            'padding_size', 'text_permuted').
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_name', 'sample_idx', 'source', 'vis_path',
                                             'ir_path', 'seg_map_path', 'ori_shape',
                                             'img_shape', 'pad_shape', 'scale_factor', 'flip',
                                             'flip_direction', 'padding_size',
                                             'text_permuted')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack the sample.

        Args:
            results (dict): The sample after loading and augmentation.

        Returns:
            dict: ``inputs`` and ``data_samples``.
        """
        missing = [k for k in ('vis', 'ir') if k not in results]
        if missing:
            raise KeyError(f'{results.get("source", "<unknown source>")}: PackRISInputs needs '
                           f'{missing}; put LoadRISImages first in the pipeline')
        inputs = dict(vis=_chw(results['vis']), ir=_chw(results['ir']))
        sample = RISDataSample()
        if 'gt_seg_map' in results:
            seg = results['gt_seg_map']
            if seg.ndim != 2:
                raise ValueError(f'{results.get("source")}: gt_seg_map has shape {seg.shape}; '
                                 'expected (H, W)')
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(seg[None].astype(np.int64)))
        if 'text' in results:
            sample.text = results['text']
        for key in ('token_ids', 'token_mask'):
            if key in results:
                sample.set_data({key: torch.as_tensor(results[key], dtype=torch.long)})
        meta = {k: results[k] for k in self.meta_keys if k in results}
        if 'img_shape' in results:
            meta.setdefault('pad_shape', results['img_shape'])
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
