"""RIS-FUSION's fusion loss terms, each on luma in [0, 1] (docs/risfusion.md#fusion-loss).

Every term is ``forward(fused_y, vis_y, ir_y) -> scalar`` on ``(B, 1, H, W)`` luma images,
weighted by ``loss_weight``, and named by ``loss_name`` (``loss_...``) so a segmentor can list
any subset in its config. The published run uses, with ``lambda = 3``::

    lambda * (0.5 (1 - SSIM(Yf, Yv)) + 0.5 MSE(Yf, Yv) + 2 MSE(Yf, Yi)
              + 1 Sobel-L1(Yf, Yi) + 1 joint max-gradient)

i.e. each term's ``loss_weight`` is its weight above, and the segmentor multiplies every term
by lambda (``RISFusion(fusion_loss_weight=3.0)``). :func:`fusion_luma` turns the normalised
(fused, VIS, IR) tensors into these luma images, one code path for training and checks.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmrisfusion.registry import MODELS

from ..utils.color import IMAGENET_MEAN_01, IMAGENET_STD_01, StatsType, denormalize, rgb_to_luma
from ..utils.precision import float32_forward
from .loss_term import BaseFusionLoss

SOURCES = ('vis', 'ir')


def fusion_luma(fused: Tensor, vis: Tensor, ir: Tensor,
                vis_mean: StatsType = IMAGENET_MEAN_01, vis_std: StatsType = IMAGENET_STD_01,
                ir_mean: StatsType = IMAGENET_MEAN_01,
                ir_std: StatsType = IMAGENET_STD_01) -> Tuple[Tensor, Tensor, Tensor]:
    """Luma of the de-normalised fused, VIS and IR images, the inputs of the fusion terms.

    Each image is de-normalised (the fused one with the VIS statistics, as the fuser
    normalises it), clamped to [0, 1] and reduced to BT.601 luma.

    Args:
        fused (Tensor): Fused RGB ``(B, 3, H, W)``, normalised with the VIS statistics.
        vis (Tensor): Normalised VIS RGB ``(B, 3, H, W)``.
        ir (Tensor): Normalised IR ``(B, 3, H, W)`` or ``(B, 1, H, W)``.
        vis_mean (Tensor | Sequence[float]): VIS mean, 0..1 scale. Defaults to ImageNet's.
        vis_std (Tensor | Sequence[float]): VIS std, 0..1 scale. Defaults to ImageNet's.
        ir_mean (Tensor | Sequence[float]): IR mean, 0..1 scale. Defaults to ImageNet's.
        ir_std (Tensor | Sequence[float]): IR std, 0..1 scale. Defaults to ImageNet's.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``(fused_y, vis_y, ir_y)``, each ``(B, 1, H, W)``.
    """
    return (rgb_to_luma(denormalize(fused, vis_mean, vis_std)),
            rgb_to_luma(denormalize(vis, vis_mean, vis_std)),
            rgb_to_luma(denormalize(ir, ir_mean, ir_std)))


def _check_source(source: str, name: str) -> str:
    if source not in SOURCES:
        raise ValueError(f'{name}: source must be one of {SOURCES}, got {source!r}')
    return source


def sobel_magnitudes(img: Tensor) -> Tuple[Tensor, Tensor]:
    """``|Gx|`` and ``|Gy|`` of 1-channel images with the Sobel kernels, zero padding 1.

    ``kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``, ``ky = [[1, 2, 1], [0, 0, 0],
    [-1, -2, -1]]`` (cross-correlation, as the published ``conv2d``). Computed as the
    separable ``[1, 2, 1]`` smoothing and ``[-1, 0, 1]`` difference on shifted views: the
    same sums (within float rounding) as ``conv2d`` with the two kernels, but a 1-channel
    3x3 convolution is a slow path of oneDNN (24 ms vs 1.2 ms forward + backward at
    16 x 128 x 128 on this project's 2-core CPU).

    Args:
        img (Tensor): ``(B, 1, H, W)``.

    Returns:
        tuple[Tensor, Tensor]: ``(|Gx|, |Gy|)``, each ``(B, 1, H, W)``.
    """
    padded = F.pad(img, (1, 1, 1, 1))
    rows = padded[..., :-2, :] + 2 * padded[..., 1:-1, :] + padded[..., 2:, :]
    cols = padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:]
    grad_x = rows[..., 2:] - rows[..., :-2]
    grad_y = cols[..., :-2, :] - cols[..., 2:, :]
    return grad_x.abs(), grad_y.abs()


class _FusionTerm(BaseFusionLoss):
    """The ``source`` handling of the RIS-FUSION terms compared with one source image.

    Every RIS-FUSION term runs in float32 with autocast off (:func:`float32_forward` on
    ``forward``): in float16/bfloat16, SSIM's variances ``E[x^2] - mu^2`` and the Sobel
    differences of images in [0, 1] lose their digits (the gradients point anywhere).
    """

    def __init__(self, source: Optional[str], loss_weight: float, loss_name: str) -> None:
        super().__init__(loss_weight, loss_name)
        self.source = None if source is None else _check_source(source, type(self).__name__)

    def _pick(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Check the inputs and return the reference image named by ``source``."""
        self.check_lumas(fused_y, vis_y, ir_y)
        return vis_y if self.source == 'vis' else ir_y


@MODELS.register_module()
class SSIMLoss(_FusionTerm):
    """``loss_weight * (1 - SSIM(fused_y, source_y))``.

    SSIM as published: Gaussian window (11, sigma 1.5) with zero padding ``window_size // 2``
    (so the map keeps the image size), ``C1 = 0.01^2``, ``C2 = 0.03^2``, mean of the map over
    the batch. The 2-D window is the outer product of a 1-D Gaussian, so the blur is applied
    as ``G_H @ X @ G_W^T`` with banded matrices holding the zero-padded 1-D window, over the
    five local statistics at once: the same numbers up to float rounding (closer to the
    float64 value than the published float32 11x11 convolutions, which are off by ~1e-5),
    and a demo training step's SSIM forward+backward on the CPU drops from ~260 ms to ~10 ms
    (mkldnn's backward of one-channel convolutions is slow).

    Args:
        source (str): 'vis' or 'ir', the image compared with. Defaults to 'vis'.
        window_size (int): Side of the Gaussian window (odd). Defaults to 11.
        sigma (float): Standard deviation of the window. Defaults to 1.5.
        loss_weight (float): Factor on the loss. Defaults to 1.0.
        loss_name (str, optional): Key in the loss dict. Defaults to None, meaning
            ``'loss_ssim_' + source``.
    """

    def __init__(self, source: str = 'vis', window_size: int = 11, sigma: float = 1.5,
                 loss_weight: float = 1.0, loss_name: Optional[str] = None) -> None:
        super().__init__(source, loss_weight, loss_name or f'loss_ssim_{source}')
        if window_size % 2 != 1:
            raise ValueError(f'SSIMLoss: window_size must be odd, got {window_size}')
        coords = torch.arange(window_size, dtype=torch.float32) - window_size // 2
        gauss = torch.exp(-coords**2 / (2 * sigma**2))
        # Not persistent: derived from the arguments, no need to live in checkpoints.
        self.register_buffer('gauss', gauss / gauss.sum(), persistent=False)

    def _band(self, size: int, like: Tensor) -> Tensor:
        """``(size, size)`` matrix ``M`` with ``M @ v`` the zero-padded 1-D Gaussian blur of v."""
        radius = self.gauss.numel() // 2
        index = torch.arange(size, device=like.device)
        offset = index[None, :] - index[:, None] + radius
        inside = (offset >= 0) & (offset < self.gauss.numel())
        weights = self.gauss.to(like.dtype)[offset.clamp(0, self.gauss.numel() - 1)]
        return torch.where(inside, weights, torch.zeros((), dtype=like.dtype,
                                                        device=like.device))

    def _blur(self, maps: Tensor) -> Tensor:
        """Gaussian-weighted local means of ``(N, 1, H, W)`` maps, zero-padded."""
        height, width = maps.shape[-2:]
        return self._band(height, maps) @ maps @ self._band(width, maps).T

    def ssim(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean SSIM of two ``(B, 1, H, W)`` batches in [0, 1]."""
        mu_x, mu_y, mean_xx, mean_yy, mean_xy = self._blur(
            torch.cat([x, y, x * x, y * y, x * y])).chunk(5)
        var_x, var_y, cov = mean_xx - mu_x**2, mean_yy - mu_y**2, mean_xy - mu_x * mu_y
        c1, c2 = 0.01**2, 0.03**2
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / \
            ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return ssim_map.mean()

    @float32_forward
    def forward(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            fused_y (Tensor): Fused luma ``(B, 1, H, W)`` in [0, 1].
            vis_y (Tensor): Visible luma ``(B, 1, H, W)`` in [0, 1].
            ir_y (Tensor): Infrared luma ``(B, 1, H, W)`` in [0, 1].

        Returns:
            Tensor: The scalar loss.
        """
        ref = self._pick(fused_y, vis_y, ir_y)
        return self.loss_weight * (1 - self.ssim(fused_y, ref))


@MODELS.register_module()
class LumaMSELoss(_FusionTerm):
    """``loss_weight * MSE(fused_y, source_y)``, the intensity term.

    Args:
        source (str): 'vis' or 'ir', the image compared with. Defaults to 'vis'.
        loss_weight (float): Factor on the loss. Defaults to 1.0.
        loss_name (str, optional): Key in the loss dict. Defaults to None, meaning
            ``'loss_mse_' + source``.
    """

    def __init__(self, source: str = 'vis', loss_weight: float = 1.0,
                 loss_name: Optional[str] = None) -> None:
        super().__init__(source, loss_weight, loss_name or f'loss_mse_{source}')

    @float32_forward
    def forward(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            fused_y (Tensor): Fused luma ``(B, 1, H, W)`` in [0, 1].
            vis_y (Tensor): Visible luma ``(B, 1, H, W)`` in [0, 1].
            ir_y (Tensor): Infrared luma ``(B, 1, H, W)`` in [0, 1].

        Returns:
            Tensor: The scalar loss.
        """
        return self.loss_weight * F.mse_loss(fused_y, self._pick(fused_y, vis_y, ir_y))


@MODELS.register_module()
class SobelL1Loss(_FusionTerm):
    """``loss_weight * (L1(|Gx f|, |Gx s|) + L1(|Gy f|, |Gy s|))`` with Sobel gradients.

    Args:
        source (str): 'vis' or 'ir', the image whose gradients are matched.
            Defaults to 'ir'.
        loss_weight (float): Factor on the loss. Defaults to 1.0.
        loss_name (str, optional): Key in the loss dict. Defaults to None, meaning
            ``'loss_sobel_' + source``.
    """

    def __init__(self, source: str = 'ir', loss_weight: float = 1.0,
                 loss_name: Optional[str] = None) -> None:
        super().__init__(source, loss_weight, loss_name or f'loss_sobel_{source}')

    @float32_forward
    def forward(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            fused_y (Tensor): Fused luma ``(B, 1, H, W)`` in [0, 1].
            vis_y (Tensor): Visible luma ``(B, 1, H, W)`` in [0, 1].
            ir_y (Tensor): Infrared luma ``(B, 1, H, W)`` in [0, 1].

        Returns:
            Tensor: The scalar loss.
        """
        ref = self._pick(fused_y, vis_y, ir_y)
        (fx, fy), (rx, ry) = sobel_magnitudes(fused_y), sobel_magnitudes(ref)
        return self.loss_weight * (F.l1_loss(fx, rx) + F.l1_loss(fy, ry))


@MODELS.register_module()
class JointGradientLoss(_FusionTerm):
    """``loss_weight * (L1(|Gx f|, max(|Gx v|, |Gx i|)) + L1(|Gy f|, max(|Gy v|, |Gy i|)))``.

    The fused image should keep the stronger Sobel gradient of the two sources, per pixel
    and per direction.

    Args:
        loss_weight (float): Factor on the loss. Defaults to 1.0.
        loss_name (str): Key in the loss dict. Defaults to 'loss_grad'.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_grad') -> None:
        super().__init__(None, loss_weight, loss_name)

    @float32_forward
    def forward(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            fused_y (Tensor): Fused luma ``(B, 1, H, W)`` in [0, 1].
            vis_y (Tensor): Visible luma ``(B, 1, H, W)`` in [0, 1].
            ir_y (Tensor): Infrared luma ``(B, 1, H, W)`` in [0, 1].

        Returns:
            Tensor: The scalar loss.
        """
        self.check_lumas(fused_y, vis_y, ir_y)
        (fx, fy), (vx, vy), (ix, iy) = map(sobel_magnitudes, (fused_y, vis_y, ir_y))
        return self.loss_weight * (F.l1_loss(fx, torch.maximum(vx, ix)) +
                                   F.l1_loss(fy, torch.maximum(vy, iy)))
