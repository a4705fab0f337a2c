"""Colour helpers shared by fusers and fusion losses.

Every function works on batched float tensors ``(B, C, H, W)`` in the 0..1 intensity scale
(after :func:`denormalize`). The YCbCr transform is ITU-R BT.601 full range with the
six-digit JFIF constants the published RIS-FUSION code uses
(docs/risfusion.md#colour-conversion):

``Y = .299 R + .587 G + .114 B``, ``Cb = .5 - .168736 R - .331264 G + .5 B``,
``Cr = .5 + .5 R - .418688 G - .081312 B``; back: ``R = Y + 1.402 Cr'``,
``G = Y - .344136 Cb' - .714136 Cr'``, ``B = Y + 1.772 Cb'`` with ``C' = C - .5``.

The rounded constants, not the exact BT.601 fractions, are what a converted official fuser
was trained with: they differ in the seventh digit, which LAVT's backbone amplifies (see
``tools/analysis_tools/check_reference.py``). A round trip is the identity to about 1e-6.
"""
from typing import Sequence, Union

import torch
from torch import Tensor

# BT.601 luma weights of R, G and B.
KR = 0.299
KG = 0.587
KB = 0.114

StatsType = Union[Tensor, Sequence[float]]

# ImageNet statistics, the published normalisation of both modalities, on both scales:
# 0..1 for the fusers and colour helpers, 0..255 (the same values x 255) for the data
# preprocessor, which normalises the uint8 images.
IMAGENET_MEAN_01 = (0.485, 0.456, 0.406)
IMAGENET_STD_01 = (0.229, 0.224, 0.225)
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


def _as_stats(stats: StatsType, like: Tensor, name: str) -> Tensor:
    """Turn per-channel statistics into a ``(1, C, 1, 1)`` tensor matching ``like``."""
    stats = torch.as_tensor(stats, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)
    if stats.shape[1] not in (1, like.shape[1]):
        raise ValueError(f'{name} has {stats.shape[1]} channel(s) but the image has '
                         f'{like.shape[1]}: expected 1 or {like.shape[1]} values')
    return stats


def _check_image(img: Tensor, channels: Union[int, tuple], name: str) -> None:
    """Raise a clear error unless ``img`` is ``(B, C, H, W)`` with an allowed ``C``."""
    allowed = channels if isinstance(channels, tuple) else (channels, )
    if img.dim() != 4 or img.shape[1] not in allowed:
        raise ValueError(f'{name} must be a (B, C, H, W) tensor with C in {allowed}, '
                         f'got shape {tuple(img.shape)}')


def denormalize(img: Tensor, mean: StatsType, std: StatsType, clamp: bool = True) -> Tensor:
    """Undo ``(x - mean) / std`` normalisation.

    Args:
        img (Tensor): Normalised images ``(B, C, H, W)``.
        mean (Tensor | Sequence[float]): Per-channel means in the 0..1 scale (``C`` values or
            one), e.g. ImageNet ``(0.485, 0.456, 0.406)``.
        std (Tensor | Sequence[float]): Per-channel standard deviations in the 0..1 scale.
        clamp (bool): Whether to clamp the result to [0, 1], as the published fuser does
            before its colour conversion. Defaults to True.

    Returns:
        Tensor: Images in the 0..1 scale, same shape as ``img``.
    """
    _check_image(img, tuple(range(1, 5)), 'img')
    out = img * _as_stats(std, img, 'std') + _as_stats(mean, img, 'mean')
    return out.clamp(0.0, 1.0) if clamp else out


def normalize(img: Tensor, mean: StatsType, std: StatsType) -> Tensor:
    """Apply ``(x - mean) / std`` normalisation (the inverse of :func:`denormalize`).

    Args:
        img (Tensor): Images ``(B, C, H, W)`` in the 0..1 scale.
        mean (Tensor | Sequence[float]): Per-channel means in the 0..1 scale.
        std (Tensor | Sequence[float]): Per-channel standard deviations in the 0..1 scale.

    Returns:
        Tensor: Normalised images, same shape as ``img``.
    """
    _check_image(img, tuple(range(1, 5)), 'img')
    return (img - _as_stats(mean, img, 'mean')) / _as_stats(std, img, 'std')


def rgb_to_luma(img: Tensor) -> Tensor:
    """BT.601 luma ``Y = .299 R + .587 G + .114 B``; a 1-channel image is already luma.

    Args:
        img (Tensor): RGB ``(B, 3, H, W)`` or gray ``(B, 1, H, W)`` images in 0..1.

    Returns:
        Tensor: Luma ``(B, 1, H, W)``.
    """
    _check_image(img, (1, 3), 'img')
    if img.shape[1] == 1:
        return img
    return KR * img[:, 0:1] + KG * img[:, 1:2] + KB * img[:, 2:3]


def rgb_to_luma_uint8(img: Tensor) -> Tensor:
    """OpenCV's 8-bit luma: ``COLOR_RGB2YCrCb``'s Y of the 8-bit image, back in 0..1.

    OpenCV computes it in fixed point, ``Y = (4899 R + 9617 G + 1868 B + 8192) >> 14`` on
    0..255 values: the BT.601 luma rounded to 8 bits, up to its 14-bit coefficients
    (LDFusion's training data, docs/ldfusion.md#training-recipe). The 8-bit values are
    recovered by rounding, so ``img`` must hold 8-bit images (``u8 / 255`` up to float error).

    Args:
        img (Tensor): RGB ``(B, 3, H, W)`` images in 0..1.

    Returns:
        Tensor: Luma ``(B, 1, H, W)``, multiples of 1/255.
    """
    _check_image(img, 3, 'img')
    r, g, b = torch.round(img.clamp(0.0, 1.0) * 255).to(torch.int32).unbind(1)
    luma = (4899 * r + 9617 * g + 1868 * b + 8192) >> 14
    return (luma.unsqueeze(1).to(img.dtype) / 255)


def rgb_to_ycbcr(img: Tensor) -> Tensor:
    """RGB to YCbCr, BT.601 full range (Cb and Cr centred on 0.5).

    Args:
        img (Tensor): RGB images ``(B, 3, H, W)`` in 0..1.

    Returns:
        Tensor: ``(B, 3, H, W)`` with channels Y, Cb, Cr, each in 0..1 for inputs in 0..1.
    """
    _check_image(img, 3, 'img')
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    y = KR * r + KG * g + KB * b
    cb = 0.5 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(img: Tensor) -> Tensor:
    """YCbCr (BT.601 full range) back to RGB, the inverse of :func:`rgb_to_ycbcr` to ~1e-6.

    No clamping here: the caller decides (the published fuser clamps to [0, 1]).

    Args:
        img (Tensor): ``(B, 3, H, W)`` with channels Y, Cb, Cr.

    Returns:
        Tensor: RGB images ``(B, 3, H, W)``.
    """
    _check_image(img, 3, 'img')
    y, cb, cr = img[:, 0:1], img[:, 1:2] - 0.5, img[:, 2:3] - 0.5
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.cat([r, g, b], dim=1)
