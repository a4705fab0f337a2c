"""Normalise, pad and stack VIS/IR batches and their tokens on the model's device."""
from numbers import Number
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmrisfusion.registry import MODELS

from .utils.color import IMAGENET_MEAN_255, IMAGENET_STD_255


def _stats(values: Sequence[Number], name: str) -> Tensor:
    values = [float(v) for v in values]
    if len(values) not in (1, 3):
        raise ValueError(f'{name} must have 1 or 3 values, got {values}')
    return torch.tensor(values).view(-1, 1, 1)


@MODELS.register_module()
class RISDataPreProcessor(BaseDataPreprocessor):
    """Per-modality normalisation, padding and stacking for VIS/IR/text batches.

    Takes what ``PackRISInputs`` and mmengine's ``pseudo_collate`` give,
    ``dict(inputs=dict(vis=[uint8 (3, H, W)], ir=[uint8 (C, H, W)]), data_samples=[...])``
    (the images already stacked by ``ris_collate``, or a list of per-sample
    ``dict(vis, ir)``, are accepted too), and returns
    ``dict(inputs=dict(vis=(B, 3, H, W), ir=(B, C, H, W), token_ids=(B, T),
    token_mask=(B, T)), data_samples)`` on the preprocessor's device; the token entries are
    present when the samples carry tokens (fusion-only data has none).

    Each modality is normalised with its own mean/std on the 0..255 scale (ImageNet for
    both, as published). IR may have 1 or 3 channels: 1-value IR statistics fit either,
    3-value ones need 3-channel IR. Images are padded at the bottom/right (after
    normalisation, with ``pad_val``) to a fixed ``size`` or to a multiple of
    ``size_divisor``, the GT masks with ``seg_pad_val``; ``img_shape``, ``pad_shape`` and
    ``padding_size`` of the metainfo are updated as mmseg's ``stack_batch`` does
    (``padding_size`` accumulates padding already added by the pipeline, e.g.
    ``RISResizePad``), so mmseg's ``postprocess_result`` removes it. Padding applies in
    training and testing alike. Without ``size`` or ``size_divisor`` all images of a batch
    must have the same size.

    Data reach the device in one copy per kind (each modality as one uint8 batch, the
    padded masks, the tokens), stacked on the host first, and normalisation and padding run
    on the whole batch there: the same numbers as normalising and padding each sample (bit
    for bit on the CPU). The masks become views of one device batch; the samples' other
    fields stay where they are.

    Args:
        vis_mean (Sequence[Number]): VIS mean. Defaults to ImageNet's (123.675, 116.28,
            103.53).
        vis_std (Sequence[Number]): VIS std. Defaults to ImageNet's (58.395, 57.12, 57.375).
        ir_mean (Sequence[Number]): IR mean. Defaults to ImageNet's.
        ir_std (Sequence[Number]): IR std. Defaults to ImageNet's.
        size (tuple[int, int], optional): Fixed padded (height, width). Defaults to None.
        size_divisor (int, optional): Pad height and width to a multiple of it.
            Defaults to None.
        pad_val (float): Image padding value (in normalised units). Defaults to 0.
        seg_pad_val (int): Mask padding value, ignored by losses and metrics.
            Defaults to 255.
        non_blocking (bool): Non-blocking host-to-device copies: from pinned memory
            (``pin_memory=True`` in the dataloader) the copy overlaps with the GPU's work.
            Defaults to True.
    """

    def __init__(self,
                 vis_mean: Sequence[Number] = IMAGENET_MEAN_255,
                 vis_std: Sequence[Number] = IMAGENET_STD_255,
                 ir_mean: Sequence[Number] = IMAGENET_MEAN_255,
                 ir_std: Sequence[Number] = IMAGENET_STD_255,
                 size: Optional[Tuple[int, int]] = None,
                 size_divisor: Optional[int] = None,
                 pad_val: float = 0.,
                 seg_pad_val: int = 255,
                 non_blocking: bool = True) -> None:
        super().__init__(non_blocking=non_blocking)
        if size is not None and size_divisor is not None:
            raise ValueError('give at most one of size and size_divisor, got '
                             f'size={size}, size_divisor={size_divisor}')
        self.register_buffer('vis_mean', _stats(vis_mean, 'vis_mean'), False)
        self.register_buffer('vis_std', _stats(vis_std, 'vis_std'), False)
        self.register_buffer('ir_mean', _stats(ir_mean, 'ir_mean'), False)
        self.register_buffer('ir_std', _stats(ir_std, 'ir_std'), False)
        self.size = tuple(size) if size is not None else None
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    @staticmethod
    def _split_inputs(inputs: Any) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """``dict(vis=..., ir=...)``, each a stacked batch or a per-sample list."""
        if isinstance(inputs, dict):
            out = {k: inputs[k] if isinstance(inputs[k], Tensor) else list(inputs[k])
                   for k in ('vis', 'ir') if k in inputs}
        elif isinstance(inputs, (list, tuple)) and all(isinstance(i, dict) for i in inputs):
            out = {k: [i[k] for i in inputs] for k in ('vis', 'ir') if k in inputs[0]}
        else:
            raise TypeError('RISDataPreProcessor expects inputs=dict(vis=[...], ir=[...]) '
                            f'(what PackRISInputs gives), got {type(inputs).__name__}')
        if set(out) != {'vis', 'ir'}:
            raise KeyError(f'RISDataPreProcessor needs both vis and ir inputs, got {sorted(out)}')
        return out

    @staticmethod
    def _host_batch(images: Union[Tensor, List[Tensor]],
                    name: str) -> Tuple[Tensor, List[Tuple[int, int]]]:
        """One modality as one (B, C, H, W) tensor, zero-padded to the largest image, and
        each sample's (h, w): stacked where the images are, before any copy."""
        if isinstance(images, Tensor):  # stacked by ris_collate
            if images.dim() != 4:
                raise ValueError(f'stacked {name} images must be (B, C, H, W), got '
                                 f'{tuple(images.shape)}')
            return images, [tuple(images.shape[-2:])] * images.shape[0]
        channels = {img.shape[0] for img in images}
        if len(channels) != 1 or any(img.ndim != 3 for img in images):
            raise ValueError(f'{name} images must all be (C, H, W) with one C, got shapes '
                             f'{[tuple(img.shape) for img in images]}')
        sizes = [tuple(img.shape[-2:]) for img in images]
        if len(set(sizes)) == 1:
            return torch.stack(images), sizes
        batch = images[0].new_zeros((len(images), channels.pop(), max(h for h, _ in sizes),
                                     max(w for _, w in sizes)))
        for out, img in zip(batch, images):
            out[:, :img.shape[1], :img.shape[2]] = img
        return batch, sizes

    def _normalise(self, images: Tensor, mean: Tensor, std: Tensor, name: str) -> Tensor:
        c = images.shape[1]
        if mean.shape[0] not in (1, c) or std.shape[0] not in (1, c):
            raise ValueError(f'{name} images have {c} channel(s) but {name}_mean/{name}_std '
                             f'have {mean.shape[0]}/{std.shape[0]} values; give one value for '
                             f'gray {name} (e.g. {name}_mean=[{float(mean.mean()):.3f}]) or '
                             f'load {name} with 3 channels')
        return (images.float() - mean) / std

    def _pad(self, batch: Tensor, sizes: List[Tuple[int, int]], target: Tuple[int, int]) -> Tensor:
        """``pad_val`` at the bottom/right of every sample, up to ``target``."""
        height, width = batch.shape[-2:]
        for image, (h, w) in zip(batch, sizes):  # samples smaller than the batch
            if h < height:
                image[:, h:] = self.pad_val
            if w < width:
                image[:, :h, w:] = self.pad_val
        if (height, width) == target:
            return batch
        return F.pad(batch, (0, target[1] - width, 0, target[0] - height), value=self.pad_val)

    def _to_device(self, tensor: Tensor) -> Tensor:
        return tensor.to(self.device, non_blocking=self._non_blocking)

    def _target_size(self, sizes: List[Tuple[int, int]], names: List[str]) -> Tuple[int, int]:
        h = max(s[0] for s in sizes)
        w = max(s[1] for s in sizes)
        if self.size is not None:
            if h > self.size[0] or w > self.size[1]:
                raise ValueError(f'an image of the batch ({h}x{w}) is larger than the fixed '
                                 f'padding size {self.size} (height, width)')
            return self.size
        if self.size_divisor:
            d = self.size_divisor
            return (h + d - 1) // d * d, (w + d - 1) // d * d
        if len(set(sizes)) > 1:
            raise ValueError('the images of a batch have different sizes '
                             f'{dict(zip(names, sizes))}; set size or size_divisor to pad them')
        return h, w

    @torch.compiler.disable
    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Normalise, pad and stack a collated batch on the device.

        Not traced by ``torch.compile``: it reads and writes every sample's metainfo, which
        would make a compiled training step recompile for every batch.

        Args:
            data (dict): ``inputs`` and ``data_samples`` from the dataloader.
            training (bool): Unused; padding and normalisation are the same in both modes.
                Defaults to False.

        Returns:
            dict: ``inputs`` (vis, ir and, with text, token_ids, token_mask) and
            ``data_samples``.
        """
        images = self._split_inputs(data['inputs'])
        samples = data.get('data_samples')
        vis, sizes = self._host_batch(images['vis'], 'vis')
        ir, ir_sizes = self._host_batch(images['ir'], 'ir')
        names = ([s.metainfo.get('img_name', str(i)) for i, s in enumerate(samples)]
                 if samples is not None else [str(i) for i in range(vis.shape[0])])
        for name, vis_size, ir_size in zip(names, sizes, ir_sizes):
            if vis_size != ir_size:
                raise ValueError(f'sample {name!r}: VIS is {vis.shape[1]}x{vis_size[0]}x'
                                 f'{vis_size[1]} but IR is {ir.shape[1]}x{ir_size[0]}x'
                                 f'{ir_size[1]} (CxHxW); expected the same height and width')
        th, tw = self._target_size(sizes, names)
        inputs = dict(
            vis=self._pad(self._normalise(self._to_device(vis), self.vis_mean, self.vis_std,
                                          'vis'), sizes, (th, tw)),
            ir=self._pad(self._normalise(self._to_device(ir), self.ir_mean, self.ir_std,
                                         'ir'), sizes, (th, tw)))
        if samples is not None:
            pads = [(0, tw - w, 0, th - h) for h, w in sizes]
            self._pad_labels(samples, pads)
            for sample, (h, w), pad in zip(samples, sizes, pads):
                old = sample.metainfo.get('padding_size', (0, 0, 0, 0))
                sample.set_metainfo(dict(
                    img_shape=sample.metainfo.get('img_shape', (h, w)), pad_shape=(th, tw),
                    padding_size=(old[0], old[1] + pad[1], old[2], old[3] + pad[3])))
            inputs.update(self._stack_tokens(samples))
        return dict(inputs=inputs, data_samples=samples)

    def _pad_labels(self, samples: list, pads: List[Tuple[int, int, int, int]]) -> None:
        """Pad the samples' ``gt_sem_seg`` with ``seg_pad_val`` and move them in one copy."""
        have = ['gt_sem_seg' in s for s in samples]
        if not any(have):
            return
        if not all(have):
            raise ValueError('some samples of the batch have gt_sem_seg and some do not')
        labels = self._to_device(torch.stack([
            F.pad(s.gt_sem_seg.data, pad, value=self.seg_pad_val)
            for s, pad in zip(samples, pads)]))
        for sample, label in zip(samples, labels):
            del sample.gt_sem_seg.data
            sample.gt_sem_seg.data = label

    def _stack_tokens(self, samples: list) -> Dict[str, Tensor]:
        """``token_ids`` and ``token_mask`` (B, T), padded with 0 to the longest."""
        has = ['token_ids' in s for s in samples]
        if not any(has):
            return {}
        if not all(has):
            raise ValueError('some samples of the batch have token_ids and some do not; '
                             'every sample needs TokenizeText or none')
        length = max(s.token_ids.numel() for s in samples)
        keys = ('token_ids', 'token_mask')
        both = torch.stack([
            torch.stack([F.pad(row, (0, length - row.numel()), value=0)
                         for row in (getattr(s, key).reshape(-1).long() for s in samples)])
            for key in keys])
        return dict(zip(keys, self._to_device(both).unbind(0)))
