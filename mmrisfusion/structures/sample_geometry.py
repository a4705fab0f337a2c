"""A sample's test-time geometry: its padding and flip, and how to undo them.

The pipeline and the data preprocessor pad a sample (recorded in the metainfo as
``padding_size``, or ``img_padding_size`` as mmseg's ``stack_batch`` names it without data
samples: left, right, top, bottom, in the frame of the network's input) and may flip it
(``flip``, ``flip_direction``: 'horizontal', 'vertical' or 'diagonal', the directions of
mmcv's and mmseg's ``RandomFlip``; 'diagonal' flips both axes). The segmentors remove both from
their outputs, and the metrics from the ground truth and the source images they compare with
those outputs; every one of them uses the helpers here, so they cannot disagree.

Every helper takes the metainfo as a mapping (``sample.metainfo``, or the dict of
``sample.to_dict()`` that metrics receive) and works on ``(..., H, W)`` tensors or arrays.
"""
from typing import Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch

from .ris_data_sample import sample_name

ArrayT = TypeVar('ArrayT', np.ndarray, torch.Tensor)

#: The axes each flip direction reverses, counted from the end of a ``(..., H, W)`` map.
FLIP_AXES = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


def padding_of(meta: Optional[Mapping]) -> Tuple[int, int, int, int]:
    """The sample's padding (left, right, top, bottom), zeros when it has none.

    ``img_padding_size`` wins over ``padding_size`` where both are set, as in mmseg's
    ``BaseSegmentor.postprocess_result``.

    Args:
        meta (Mapping, optional): The sample's metainfo. None means no padding.

    Returns:
        tuple[int, int, int, int]: left, right, top, bottom.
    """
    if meta is None:
        return 0, 0, 0, 0
    pad = meta.get('img_padding_size', meta.get('padding_size')) or (0, 0, 0, 0)
    if len(pad) != 4:
        raise ValueError(f'{sample_name(meta)}: padding_size must be (left, right, top, bottom), '
                         f'got {tuple(pad)}')
    left, right, top, bottom = (int(p) for p in pad)
    return left, right, top, bottom


def unpad(image: ArrayT, meta: Optional[Mapping]) -> ArrayT:
    """Remove the sample's padding from a ``(..., H, W)`` map at the padded size.

    Args:
        image (np.ndarray | torch.Tensor): The padded map.
        meta (Mapping, optional): The sample's metainfo. None means no padding.

    Returns:
        np.ndarray | torch.Tensor: A view without the padding.
    """
    left, right, top, bottom = padding_of(meta)
    height, width = image.shape[-2:]
    return image[..., top:height - bottom, left:width - right]


def crop_to(image: ArrayT, shape: Sequence[int], meta: Optional[Mapping]) -> ArrayT:
    """Cut ``shape`` (h, w) out of a padded map at the sample's (top, left) offset.

    For maps that carry only part of the recorded padding (the source images of a batch
    lack the padding the data preprocessor added later): the left and top offsets are exact,
    the right and bottom ones may be smaller than recorded.

    Args:
        image (np.ndarray | torch.Tensor): The (partly) padded map.
        shape (Sequence[int]): The (h, w) to keep.
        meta (Mapping, optional): The sample's metainfo. None means no padding.

    Returns:
        np.ndarray | torch.Tensor: A view without the padding.
    """
    height, width = shape[:2]
    left, _, top, _ = padding_of(meta)
    return image[..., top:top + height, left:left + width]


def undo_flip(image: ArrayT, meta: Optional[Mapping]) -> ArrayT:
    """Flip a ``(..., H, W)`` map back when the sample's metainfo says ``flip``.

    A flip is its own inverse, so this also applies the sample's flip to an unflipped map.

    Args:
        image (np.ndarray | torch.Tensor): The map, in the flipped frame.
        meta (Mapping, optional): The sample's metainfo. None means no flip.

    Returns:
        np.ndarray | torch.Tensor: The map in the original orientation.
    """
    if meta is None or not meta.get('flip', False):
        return image
    direction = meta.get('flip_direction')
    if direction not in FLIP_AXES:
        raise ValueError(f'{sample_name(meta)}: flip is set but flip_direction is {direction!r}; '
                         f'expected one of {list(FLIP_AXES)}')
    if isinstance(image, torch.Tensor):
        return image.flip(dims=FLIP_AXES[direction])
    return np.flip(image, axis=FLIP_AXES[direction])


def to_original_frame(image: ArrayT, meta: Optional[Mapping]) -> ArrayT:
    """Remove the padding of a map at the network's input size, then undo the flip.

    The padding is recorded in the network's (flipped) frame, so it goes first.

    Args:
        image (np.ndarray | torch.Tensor): A ``(..., H, W)`` output at the padded size.
        meta (Mapping, optional): The sample's metainfo. None means neither.

    Returns:
        np.ndarray | torch.Tensor: The map without padding, in the original orientation.
    """
    return undo_flip(unpad(image, meta), meta)
