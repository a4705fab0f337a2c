"""Undoing the test-time padding and flip on what a metric compares with a prediction.

The segmentors remove the padding (``img_padding_size`` or ``padding_size``: left, right,
top, bottom) and undo a test-time flip on their outputs; the ground truth and the source
images a metric reads still carry both. These helpers apply the same inverse to them.
"""
from typing import Tuple, TypeVar, Union

import numpy as np
import torch

ArrayT = TypeVar('ArrayT', np.ndarray, torch.Tensor)


def padding_of(sample: dict) -> Tuple[int, int, int, int]:
    """The sample's padding (left, right, top, bottom), zeros when it has none.

    Args:
        sample (dict): The data sample as a dict (metainfo keys at the top level).

    Returns:
        tuple[int, int, int, int]: left, right, top, bottom.
    """
    pad = sample.get('img_padding_size', sample.get('padding_size')) or (0, 0, 0, 0)
    left, right, top, bottom = (int(p) for p in pad)
    return left, right, top, bottom


def undo_flip(image: ArrayT, sample: dict) -> ArrayT:
    """Flips the last two axes (H, W) back when the sample's metainfo says ``flip``.

    Args:
        image (np.ndarray | torch.Tensor): (..., H, W) map.
        sample (dict): The data sample as a dict.

    Returns:
        np.ndarray | torch.Tensor: The map in the orientation of the model's output.
    """
    if not sample.get('flip', False):
        return image
    direction = sample.get('flip_direction', 'horizontal')
    axes = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}
    if direction not in axes:
        raise ValueError(f'unknown flip_direction {direction!r}; expected one of '
                         f'{list(axes)}')
    if isinstance(image, torch.Tensor):
        return image.flip(dims=axes[direction])
    return np.flip(image, axis=axes[direction])


def crop_to(image: ArrayT, shape: Union[tuple, torch.Size], sample: dict) -> ArrayT:
    """Crops a padded (..., H, W) map to ``shape`` at the sample's (top, left) offset.

    Args:
        image (np.ndarray | torch.Tensor): The padded map.
        shape (tuple): The (h, w) to keep.
        sample (dict): The data sample as a dict, for the padding offsets.

    Returns:
        np.ndarray | torch.Tensor: The map without its padding.
    """
    h, w = shape
    left, _, top, _ = padding_of(sample)
    return image[..., top:top + h, left:left + w]
