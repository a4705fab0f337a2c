"""Fusion-quality metrics of infrared-visible image fusion (IVIF), vectorised.

These are the no-reference and source-referenced measures behind published IVIF tables
(SPEC.md section 4), written to give the same numbers as the evaluator most tables were made
with (``utils/Evaluator.py`` of MMIF-CDDFuse, called as ``metric(F, ir, vi)``), image by
image, but with whole-array numpy operations instead of direct 2-D convolutions: the
17 x 17 Gaussian of VIF is applied as two 1-D passes, SSIM's window by running means.

Conventions every function shares:

- Inputs are gray images as float arrays on the 0..255 scale with integer values, as
  :func:`imread_gray` and :func:`rgb_to_gray` give them (8-bit image, OpenCV BGR->GRAY luma,
  rounded). ``fused``, ``ir`` and ``vis`` must have the same (H, W) shape.
- Everything is computed in float64. The reference evaluator works on float32 images, so
  its float32 results differ from ours in the 7th significant digit.
- Two-input metrics are computed for (F, IR) and (F, VIS) and summed (MI, SCD, VIF, Qabf,
  SSIM) or averaged (CC, MSE), as the published tables do.

SSIM has two data-range conventions and both are offered under names that cannot be mixed
up: ``SSIM_dr2`` is what published tables report (scikit-image < 0.20 silently used
``data_range=2`` for float input although the images are on 0..255, which makes C1 and C2
almost zero); ``SSIM_dr255`` uses the physically meaningful ``data_range=255``.
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy.ndimage import correlate1d

Array = np.ndarray


def rgb_to_gray(img: Array, channel_order: str = 'rgb') -> Array:
    """Converts an 8-bit image to the evaluators' gray convention.

    The reference reads images with OpenCV, converts the float BGR image to gray with
    OpenCV's luma (0.299 R + 0.587 G + 0.114 B) and rounds; we do the same, so colour
    visible images give the very same gray values.

    Args:
        img (np.ndarray): (H, W, 3) or (H, W) or (H, W, 1) uint8 image.
        channel_order (str): 'rgb' or 'bgr', the order of a 3-channel image.
            Defaults to 'rgb'.

    Returns:
        np.ndarray: (H, W) float64 gray image with integer values in 0..255.
    """
    if img.dtype != np.uint8:
        raise TypeError(f'expected an 8-bit image (uint8), got {img.dtype}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape '
                         f'{img.shape}')
    codes = {'rgb': cv2.COLOR_RGB2GRAY, 'bgr': cv2.COLOR_BGR2GRAY}
    if channel_order not in codes:
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    gray = cv2.cvtColor(img.astype(np.float32), codes[channel_order])
    return np.round(gray).astype(np.float64)


def imread_gray(path: str) -> Array:
    """Reads an image file the way the reference evaluator does.

    Args:
        path (str): An image file OpenCV can read (PNG, JPEG, BMP, TIFF, ...).

    Returns:
        np.ndarray: (H, W) float64 gray image with integer values in 0..255.
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path}: missing or not an image file')
    return rgb_to_gray(img, channel_order='bgr')


def _check_same_shape(fused: Array, ir: Array, vis: Array) -> None:
    """Raises if the three gray images do not have one common (H, W) shape."""
    if not (fused.ndim == 2 and fused.shape == ir.shape == vis.shape):
        raise ValueError('fused, ir and vis must be gray (H, W) images of one shape, got '
                         f'{fused.shape}, {ir.shape} and {vis.shape}')


def _pearson(a: Array, b: Array) -> float:
    """Pearson correlation of two images (NaN when one of them is constant)."""
    a = a - a.mean()
    b = b - b.mean()
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def entropy(fused: Array) -> float:
    """EN: Shannon entropy in bits of the 256-level histogram of the rounded image.

    Args:
        fused (np.ndarray): (H, W) gray image, 0..255.

    Returns:
        float: The entropy, between 0 and 8.
    """
    levels = np.clip(np.round(fused), 0, 255).astype(np.intp).ravel()
    p = np.bincount(levels, minlength=256) / levels.size
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def standard_deviation(fused: Array) -> float:
    """SD: population standard deviation of the image (contrast).

    Args:
        fused (np.ndarray): (H, W) gray image, 0..255.

    Returns:
        float: The standard deviation.
    """
    return float(np.std(fused))


def spatial_frequency(fused: Array) -> float:
    """SF: sqrt of the mean squared horizontal plus mean squared vertical difference.

    Args:
        fused (np.ndarray): (H, W) gray image, 0..255.

    Returns:
        float: The spatial frequency.
    """
    row = np.mean((fused[:, 1:] - fused[:, :-1]) ** 2)
    col = np.mean((fused[1:] - fused[:-1]) ** 2)
    return float(np.sqrt(row + col))


def average_gradient(fused: Array) -> float:
    """AG: mean of sqrt((Gx^2 + Gy^2) / 2).

    Gradients are central differences inside and one-sided differences on the border
    (``numpy.gradient``'s first-order edges, as the reference).

    Args:
        fused (np.ndarray): (H, W) gray image, 0..255, at least 2 x 2.

    Returns:
        float: The average gradient.
    """
    gy, gx = np.gradient(fused)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2)))


def _mutual_information_pair(a: Array, b: Array) -> float:
    """Mutual information in nats from the joint histogram of two integer images."""
    a = np.clip(np.round(a), 0, 255).astype(np.intp).ravel()
    b = np.clip(np.round(b), 0, 255).astype(np.intp).ravel()
    joint = np.bincount(a * 256 + b, minlength=256 * 256).reshape(256, 256)
    joint = joint / a.size
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    mi = np.sum(joint[nz] * np.log(joint[nz] / (pa * pb)[nz]))
    return float(max(mi, 0.0))


def mutual_information(fused: Array, ir: Array, vis: Array) -> float:
    """MI: MI(F, IR) + MI(F, VIS) in nats.

    The same quantity as scikit-learn's ``mutual_info_score`` on the flattened integer
    images (natural log); MATLAB-style log2 values are 1/ln 2 = 1.443 times larger.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: The summed mutual information.
    """
    _check_same_shape(fused, ir, vis)
    return _mutual_information_pair(fused, ir) + _mutual_information_pair(fused, vis)


def scd(fused: Array, ir: Array, vis: Array) -> float:
    """SCD: sum of the correlations of differences, corr(F - VIS, IR) + corr(F - IR, VIS).

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: The SCD, at most 2.
    """
    _check_same_shape(fused, ir, vis)
    return _pearson(fused - vis, ir) + _pearson(fused - ir, vis)


def correlation_coefficient(fused: Array, ir: Array, vis: Array) -> float:
    """CC: mean of the Pearson correlations of F with IR and with VIS.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: The CC, in [-1, 1].
    """
    _check_same_shape(fused, ir, vis)
    return (_pearson(ir, fused) + _pearson(vis, fused)) / 2


def mse(fused: Array, ir: Array, vis: Array) -> float:
    """MSE: mean of MSE(F, IR) and MSE(F, VIS) on the 0..255 scale.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: The averaged mean squared error.
    """
    _check_same_shape(fused, ir, vis)
    return float((np.mean((ir - fused) ** 2) + np.mean((vis - fused) ** 2)) / 2)


def psnr(fused: Array, ir: Array, vis: Array) -> float:
    """PSNR: 10 log10(max(F)^2 / MSE) with the averaged MSE of :func:`mse`.

    The peak is the fused image's own maximum, not 255, as in the reference.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: The PSNR in dB (inf when F equals both sources).
    """
    with np.errstate(divide='ignore'):
        return float(10 * np.log10(np.max(fused) ** 2 / mse(fused, ir, vis)))


def _gaussian_1d(size: int) -> Array:
    """The 1-D factor of MATLAB's ``fspecial('gaussian', size, size / 5)``, normalised.

    MATLAB zeroes 2-D entries below eps * max before normalising; for the sizes VIF uses
    (17, 9, 5, 3 with sigma = size / 5) the smallest 2-D entry is exp(-2 * 2.5^2 / 2) =
    exp(-6.25) >> eps, so nothing is zeroed and the 2-D window is exactly the outer product
    of this vector with itself.
    """
    sigma = size / 5.0
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _correlate_valid(maps: Array, weights: Array, step: int = 1) -> Array:
    """'valid' separable filtering of (..., H, W) maps with outer(weights, weights).

    Keeps every ``step``-th output row and column (the subsampling of VIF's scales).
    ``weights`` is symmetric, so correlation and convolution are the same.
    """
    r = weights.size // 2
    out = correlate1d(maps, weights, axis=-2, mode='constant')
    out = out[..., r:out.shape[-2] - r:step, :]
    out = correlate1d(out, weights, axis=-1, mode='constant')
    return out[..., r:out.shape[-1] - r:step]


def _vif_pairs(fused: Array, refs: Sequence[Array]) -> Array:
    """Pixel-domain VIF (Sheikh and Bovik) of ``fused`` against each reference image.

    The statistics of all pairs are filtered in one stack, and the fused image's own
    statistics are computed once for every reference.
    """
    sigma_nsq = 2.0
    eps = 1e-10
    k = len(refs)
    num = np.zeros(k)
    den = np.zeros(k)
    imgs = np.stack([fused, *refs])
    for scale in range(1, 5):
        g = _gaussian_1d(2 ** (5 - scale) + 1)
        if scale > 1:
            imgs = _correlate_valid(imgs, g, step=2)
        stats = _correlate_valid(np.concatenate([imgs, imgs * imgs, imgs[1:] * imgs[0]]), g)
        mu_f, mu_r = stats[0], stats[1:k + 1]
        sigma2_sq = np.maximum(stats[k + 1] - mu_f * mu_f, 0)  # fused ("distorted")
        sigma1_sq = np.maximum(stats[k + 2:2 * k + 2] - mu_r * mu_r, 0)  # references
        sigma12 = stats[2 * k + 2:] - mu_r * mu_f

        gain = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - gain * sigma12
        flat_ref = sigma1_sq < eps
        gain[flat_ref] = 0
        sv_sq = np.where(flat_ref, sigma2_sq, sv_sq)
        sigma1_sq[flat_ref] = 0
        flat_fused = np.broadcast_to(sigma2_sq < eps, gain.shape)
        gain[flat_fused] = 0
        sv_sq[flat_fused] = 0
        negative = gain < 0
        sv_sq = np.where(negative, sigma2_sq, sv_sq)
        gain[negative] = 0
        sv_sq[sv_sq <= eps] = eps

        num += np.sum(np.log10(1 + gain * gain * sigma1_sq / (sv_sq + sigma_nsq)), axis=(1, 2))
        den += np.sum(np.log10(1 + sigma1_sq / sigma_nsq), axis=(1, 2))
    with np.errstate(invalid='ignore', divide='ignore'):
        vifs = num / den
    return np.where(np.isnan(vifs), 1.0, vifs)


def vif(fused: Array, ir: Array, vis: Array) -> float:
    """VIF: pixel-domain visual information fidelity, VIF(IR, F) + VIF(VIS, F).

    Four scales with Gaussian windows of size 17, 9, 5, 3 (sigma = size / 5); coarser scales
    are filtered ('valid') and subsampled by 2; local statistics use 'valid' filtering;
    sigma_n^2 = 2, eps = 1e-10; a NaN ratio counts as 1. The windows are applied as two
    1-D passes (same numbers as the reference's direct 2-D convolution up to rounding,
    about 9x fewer operations at the finest scale).

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: The summed VIF.
    """
    _check_same_shape(fused, ir, vis)
    if min(fused.shape) < 41:
        raise ValueError(f'VIF needs images of at least 41 x 41 pixels (four scales), got '
                         f'{fused.shape}')
    return float(np.sum(_vif_pairs(fused, [ir, vis])))


def _sobel_same(img: Array, pad_mode: str) -> Tuple[Array, Array]:
    """Sobel responses with one pixel of padding, 'same' size.

    Returns ``(gx, gy)`` = the correlations of the padded image with
    ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and ``[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]``.
    The true convolutions with the reference's kernels ``[[-1,0,1],[-2,0,2],[-1,0,1]]`` and
    ``[[1,2,1],[0,0,0],[-1,-2,-1]]`` are ``-gx`` and ``gy``.
    """
    p = np.pad(img, 1, mode=pad_mode)
    vertical = p[:-2] + 2 * p[1:-1] + p[2:]
    horizontal = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]
    gx = vertical[:, 2:] - vertical[:, :-2]
    gy = horizontal[2:] - horizontal[:-2]
    return gx, gy


def _qabf_strength_angle(img: Array) -> Tuple[Array, Array]:
    """Edge strength and orientation as the Qabf reference computes them."""
    gx, gy = _sobel_same(img, 'constant')
    sx, sy = -gx, gy  # the true convolutions with the reference's kernels
    # atan(Sy / Sx), and pi / 2 = atan(inf) where Sx = 0.
    ratio = np.divide(sy, sx, out=np.full(img.shape, np.inf), where=sx != 0)
    return np.sqrt(sx * sx + sy * sy), np.arctan(ratio)


def _qabf_preservation(g_a: Array, a_a: Array, g_f: Array, a_f: Array) -> Array:
    """Edge preservation Q_AF of source A in the fused image F."""
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = np.minimum(g_a, g_f) / np.maximum(g_a, g_f)
    # The reference sets G_AF = g_F where both strengths are equal (0 on flat areas), not
    # 1; kept for comparable numbers. Strengths are square roots of integers (for integer
    # images), so equality is exact.
    ratio = np.where(g_a == g_f, g_f, ratio)
    orientation = 1 - np.abs(a_a - a_f) * (2 / np.pi)
    q_g = 0.9994 / (1 + np.exp(-15 * (ratio - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (orientation - 0.8)))
    return q_g * q_a


def qabf(fused: Array, ir: Array, vis: Array) -> float:
    """Qabf: Xydeas-Petrovic gradient-based edge-preservation measure.

    Sobel responses are true 2-D convolutions with zero padding ('same' size); strength
    g = sqrt(Sx^2 + Sy^2), orientation atan(Sy / Sx) (pi / 2 where Sx = 0);
    Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B), A = IR, B = VIS.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: Qabf, in [0, 1).
    """
    _check_same_shape(fused, ir, vis)
    g_f, a_f = _qabf_strength_angle(fused)
    g_a, a_a = _qabf_strength_angle(ir)
    g_b, a_b = _qabf_strength_angle(vis)
    q_af = _qabf_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_preservation(g_b, a_b, g_f, a_f)
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.sum(q_af * g_a + q_bf * g_b) / np.sum(g_a + g_b))


def _nabf_strength_angle(img: Array) -> Tuple[Array, Array]:
    """Edge strength and orientation with Sobel / 8 and one-pixel border replication."""
    gh, gv = _sobel_same(img, 'edge')
    gh /= 8
    gv /= 8
    # atan(gv / gh): +-pi/2 where only gh = 0, and 0 where both are 0.
    ratio = np.divide(gv, gh, out=np.copysign(np.full(img.shape, np.inf), gv), where=gh != 0)
    ratio[(gh == 0) & (gv == 0)] = 0
    return np.sqrt(gh * gh + gv * gv), np.arctan(ratio)


def _nabf_preservation(g_a: Array, a_a: Array, g_f: Array, a_f: Array) -> Array:
    """Kumar's edge preservation Q_AF = sqrt(Q_g Q_a)."""
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = np.minimum(g_a, g_f) / np.maximum(g_a, g_f)
    ratio = np.where((g_a == 0) | (g_f == 0), 0, ratio)
    orientation = np.abs(np.abs(a_a - a_f) - np.pi / 2) * 2 / np.pi
    q_g = 0.9999 / (1 + np.exp(-19 * (ratio - 0.5)))
    q_a = 0.9995 / (1 + np.exp(-22 * (orientation - 0.5)))
    return np.sqrt(q_g * q_a)


def nabf(fused: Array, ir: Array, vis: Array) -> float:
    """Nabf: the noise/artifact rate that fusion adds (Kumar's modified measure).

    Edges stronger in F than in both sources count as artifacts:
    Nabf = sum(na ((1 - Q_AF) w_A + (1 - Q_BF) w_B)) / sum(w_A + w_B), na = [g_F > g_A and
    g_F > g_B], w = g^1.5 where g >= 2 else 0.001. Sobel kernels / 8 on the image with its
    border pixel replicated; Q_AF = sqrt(Q_g Q_a) with Q_g = 0.9999 / (1 + e^(-19 (G - 0.5))),
    Q_a = 0.9995 / (1 + e^(-22 (A - 0.5))), A = ||a_A - a_F| - pi/2| * 2/pi. Lower is better.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.

    Returns:
        float: Nabf, in [0, 1].
    """
    _check_same_shape(fused, ir, vis)
    g_f, a_f = _nabf_strength_angle(fused)
    g_a, a_a = _nabf_strength_angle(ir)
    g_b, a_b = _nabf_strength_angle(vis)
    w_a = np.where(g_a >= 2, g_a ** 1.5, 0.001)
    w_b = np.where(g_b >= 2, g_b ** 1.5, 0.001)
    q_af = _nabf_preservation(g_a, a_a, g_f, a_f)
    q_bf = _nabf_preservation(g_b, a_b, g_f, a_f)
    artifact = (g_f > g_a) & (g_f > g_b)
    penalty = np.where(artifact, (1 - q_af) * w_a + (1 - q_bf) * w_b, 0)
    return float(np.sum(penalty) / np.sum(w_a + w_b))


def _box_valid(maps: Array, win: int) -> Array:
    """'valid' sums of (..., H, W) maps over win x win windows, by shifted slices.

    Box sums of integer images are exact in float64, so the local means match
    scikit-image's running-mean ``uniform_filter`` up to its own rounding.
    """
    h, w = maps.shape[-2:]
    rows = maps[..., :w - win + 1].copy()
    for k in range(1, win):
        rows += maps[..., k:w - win + 1 + k]
    out = rows[..., :h - win + 1, :].copy()
    for k in range(1, win):
        out += rows[..., k:h - win + 1 + k, :]
    return out


def _ssim_pairs(fused: Array, refs: Sequence[Array], data_ranges: Sequence[float]) -> Array:
    """Mean SSIM(F, R) of each reference R (rows) for each data range (columns).

    scikit-image's ``structural_similarity`` with its defaults: 7 x 7 uniform window, sample
    covariance, mean over the map without its 3-pixel border (the part that padding does
    not reach, so the 'valid' box sums give exactly that part).
    """
    win = 7
    if min(fused.shape) < win:
        raise ValueError(f'SSIM needs images of at least {win} x {win} pixels, got '
                         f'{fused.shape}')
    k = len(refs)
    imgs = np.stack([fused, *refs])
    stats = _box_valid(np.concatenate([imgs, imgs * imgs, imgs[1:] * imgs[0]]), win)
    stats /= win * win
    cov_norm = win * win / (win * win - 1)
    ux, uy = stats[0], stats[1:k + 1]
    vx = cov_norm * (stats[k + 1] - ux * ux)
    vy = cov_norm * (stats[k + 2:2 * k + 2] - uy * uy)
    vxy = cov_norm * (stats[2 * k + 2:] - ux * uy)
    two_mu = 2 * ux * uy
    mu_sq = ux * ux + uy * uy
    two_cov = 2 * vxy
    var_sum = vx + vy
    means = np.empty((k, len(data_ranges)))
    for j, data_range in enumerate(data_ranges):
        c1 = (0.01 * data_range) ** 2
        c2 = (0.03 * data_range) ** 2
        ssim_map = (two_mu + c1) * (two_cov + c2) / ((mu_sq + c1) * (var_sum + c2))
        means[:, j] = ssim_map.mean(axis=(1, 2))
    return means


def ssim(fused: Array, ir: Array, vis: Array, data_range: float = 2.0) -> float:
    """SSIM(F, IR) + SSIM(F, VIS), scikit-image's ``structural_similarity`` defaults.

    7 x 7 uniform window (mirror-padded), K1 = 0.01, K2 = 0.03, sample covariance, mean over
    the map without its 3-pixel border. ``data_range=2`` reproduces published tables
    (``SSIM_dr2``); ``data_range=255`` is the meaningful one for 0..255 images
    (``SSIM_dr255``).

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.
        data_range (float): L in C1 = (K1 L)^2, C2 = (K2 L)^2. Defaults to 2.0.

    Returns:
        float: The summed SSIM, at most 2.
    """
    _check_same_shape(fused, ir, vis)
    return float(np.sum(_ssim_pairs(fused, [ir, vis], [data_range])))


def _fused_only(fn: Callable[[Array], float]) -> Callable[[Array, Array, Array], float]:
    """Lifts a no-reference metric to the common (fused, ir, vis) signature."""

    def metric(fused: Array, ir: Array, vis: Array) -> float:
        return fn(fused)

    metric.__doc__ = fn.__doc__
    return metric


#: Every metric by the name it is reported under, each called as ``fn(fused, ir, vis)``.
FUSION_METRICS: Dict[str, Callable[[Array, Array, Array], float]] = {
    'EN': _fused_only(entropy),
    'SD': _fused_only(standard_deviation),
    'SF': _fused_only(spatial_frequency),
    'AG': _fused_only(average_gradient),
    'MI': mutual_information,
    'SCD': scd,
    'VIF': vif,
    'Qabf': qabf,
    'SSIM_dr2': lambda fused, ir, vis: ssim(fused, ir, vis, data_range=2.0),
    'SSIM_dr255': lambda fused, ir, vis: ssim(fused, ir, vis, data_range=255.0),
    'PSNR': psnr,
    'CC': correlation_coefficient,
    'MSE': mse,
    'Nabf': nabf,
}


def compute_fusion_metrics(fused: Array, ir: Array, vis: Array,
                           metrics: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Computes several fusion metrics of one image triple.

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.
        metrics (Sequence[str], optional): Names from :data:`FUSION_METRICS`; None for all.
            Defaults to None.

    Returns:
        dict[str, float]: Value of each requested metric, in the requested order.
    """
    names = list(FUSION_METRICS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in FUSION_METRICS]
    if unknown:
        raise KeyError(f'unknown fusion metric(s) {unknown}; expected names from '
                       f'{list(FUSION_METRICS)}')
    _check_same_shape(fused, ir, vis)
    results = {}
    ssim_ranges = {'SSIM_dr2': 2.0, 'SSIM_dr255': 255.0}
    wanted_ranges = [name for name in ssim_ranges if name in names]
    if wanted_ranges:
        # Both SSIM conventions share the expensive local statistics.
        sums = _ssim_pairs(fused, [ir, vis], [ssim_ranges[name] for name in wanted_ranges])
        for j, name in enumerate(wanted_ranges):
            results[name] = float(sums[:, j].sum())
    for name in names:
        if name not in results:
            results[name] = FUSION_METRICS[name](fused, ir, vis)
    return {name: results[name] for name in names}
