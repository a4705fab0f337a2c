"""Fusion-quality metrics of infrared-visible image fusion (IVIF), vectorised.

These are the no-reference and source-referenced measures behind published IVIF tables
(docs/metrics.md#fusion-quality-metrics), written to give the same numbers as the evaluator
most tables were made with (``utils/Evaluator.py`` of MMIF-CDDFuse, called as
``metric(F, ir, vi)``), image by image, about 10x faster: the reference's direct 2-D
convolutions become OpenCV separable, box and Sobel filters, and the elementwise chains run
on blocks of rows that stay in the CPU cache.

Conventions every function shares:

- Inputs are gray images as float arrays on the 0..255 scale with integer values, as
  :func:`imread_gray` and :func:`rgb_to_gray` give them (8-bit image, OpenCV BGR->GRAY luma,
  rounded). ``fused``, ``ir`` and ``vis`` must have the same (H, W) shape.
- Two-input metrics are computed for (F, IR) and (F, VIS) and summed (MI, SCD, VIF, Qabf,
  SSIM) or averaged (CC, MSE), as the published tables do.
- Precision: float64, except Qabf and Nabf, which run in float32 like the Qabf reference
  (their edge comparisons stay exact, see :func:`_sobel_same`). The reference computes most
  metrics on float32 images; on the 50 TNO reference triples every value agrees within
  3e-7 relative, except ``SSIM_dr2`` (3e-5: with data_range 2 the constants C1, C2 are
  almost 0 and the reference's float32 variances lose digits; ours are float64).

SSIM has two data-range conventions and both are offered under names that cannot be mixed
up: ``SSIM_dr2`` is what published tables report (scikit-image < 0.20 silently used
``data_range=2`` for float input although the images are on 0..255, which makes C1 and C2
almost zero); ``SSIM_dr255`` uses the physically meaningful ``data_range=255``.
"""
import functools
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

Array = np.ndarray

# Rows per block of elementwise work (a few hundred KB per float64 array).
_BLOCK_ROWS = 32


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


def _dot(a: Array, b: Array) -> float:
    """Sum of the elementwise product (one pass, no temporary array)."""
    return float(np.einsum('ij,ij->', a, b))


def _correlation(dot_ab: float, dot_aa: float, dot_bb: float) -> float:
    """Pearson correlation from centred dot products (NaN when one image is constant)."""
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.float64(dot_ab) / np.sqrt(np.float64(dot_aa) * dot_bb))


def _cc_and_scd(fused: Array, ir: Array, vis: Array) -> Tuple[float, float]:
    """CC and SCD from one set of centred images (the differences F - VIS and F - IR are
    centred by subtracting the centred images)."""
    f, i, v = (img - img.mean() for img in (fused, ir, vis))
    ff, ii, vv = _dot(f, f), _dot(i, i), _dot(v, v)
    cc = (_correlation(_dot(i, f), ii, ff) + _correlation(_dot(v, f), vv, ff)) / 2
    f_minus_v = f - v
    f_minus_i = np.subtract(f, i, out=f)
    scd_value = (_correlation(_dot(f_minus_v, i), _dot(f_minus_v, f_minus_v), ii)
                 + _correlation(_dot(f_minus_i, v), _dot(f_minus_i, f_minus_i), vv))
    return cc, scd_value


def _levels(img: Array) -> Array:
    """Flat integer intensity levels 0..255 of a gray image."""
    return np.clip(np.round(img), 0, 255).astype(np.intp).ravel()


def entropy(fused: Array) -> float:
    """EN: Shannon entropy in bits of the 256-level histogram of the rounded image.

    Args:
        fused (np.ndarray): (H, W) gray image, 0..255.

    Returns:
        float: The entropy, between 0 and 8.
    """
    levels = _levels(fused)
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
    """Mutual information in nats from the joint histogram of two level images."""
    joint = np.bincount(a * 256 + b, minlength=256 * 256).reshape(256, 256) / a.size
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
    levels = _levels(fused)
    return (_mutual_information_pair(levels, _levels(ir))
            + _mutual_information_pair(levels, _levels(vis)))


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
    return _cc_and_scd(fused, ir, vis)[1]


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
    return _cc_and_scd(fused, ir, vis)[0]


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


def _filter_valid(img: Array, weights: Array, step: int = 1) -> Array:
    """'valid' separable filtering of an (H, W) map with outer(weights, weights).

    Keeps every ``step``-th output row and column (the subsampling of VIF's scales).
    ``weights`` is symmetric, so correlation and convolution are the same. OpenCV's
    separable filter works in float64 and is several times faster than a direct
    correlation; the padded border it computes is cropped away.
    """
    r = weights.size // 2
    out = cv2.sepFilter2D(img, cv2.CV_64F, weights, weights, borderType=cv2.BORDER_CONSTANT)
    return out[r:out.shape[0] - r:step, r:out.shape[1] - r:step]


def _row_blocks(rows: int, block: int = _BLOCK_ROWS) -> Iterator[slice]:
    """Row slices of a few rows each, so that chains of elementwise operations run on
    arrays that stay in the CPU cache (about 2x faster than on whole images)."""
    for start in range(0, rows, block):
        yield slice(start, min(start + block, rows))


def _vif_sums(mu_r: Array, er2: Array, erf: Array, mu_f: Array,
              sigma2_sq: Array) -> Tuple[float, float]:
    """Numerator and denominator sums of one VIF scale from the filtered statistics.

    The reference's clamps (sigma1^2 < eps -> g = 0; sigma2^2 < eps -> g = 0; g < 0 ->
    g = 0; sv^2 <= eps -> eps) only change sv^2 where g ends at 0, where the numerator term
    is 0 whatever sv^2 is, so they reduce to one mask. log10(1 + x) is summed as
    log1p(x): the ratio num / den is the same and log1p is exact for tiny x.
    """
    eps = 1e-10
    sigma_nsq = 2.0
    num = 0.0
    den = 0.0
    for rows in _row_blocks(mu_r.shape[0]):
        m_r = mu_r[rows]
        s2 = sigma2_sq[rows]
        s1 = er2[rows] - m_r * m_r
        informative = s1 >= eps
        s1 *= informative  # negative and sub-eps variances count as 0
        s12 = erf[rows] - m_r * mu_f[rows]
        gain = s12 / (s1 + eps)
        sv = s2 - gain * s12
        np.maximum(sv, eps, out=sv)
        sv += sigma_nsq
        informative &= s2 >= eps
        informative &= gain > 0
        term = gain * gain
        term *= s1
        term /= sv
        term *= informative
        num += float(np.log1p(term).sum())
        s1 /= sigma_nsq
        den += float(np.log1p(s1).sum())
    return num, den


def _vif_pairs(fused: Array, refs: Sequence[Array]) -> List[float]:
    """Pixel-domain VIF (Sheikh and Bovik) of ``fused`` against each reference image.

    The fused image's own statistics are filtered once for all references.
    """
    num = [0.0] * len(refs)
    den = [0.0] * len(refs)
    imgs = [fused, *refs]
    for scale in range(1, 5):
        g = _gaussian_1d(2 ** (5 - scale) + 1)
        if scale > 1:
            imgs = [_filter_valid(img, g, step=2) for img in imgs]
        f = imgs[0]
        mu_f = _filter_valid(f, g)
        sigma2_sq = _filter_valid(f * f, g) - mu_f * mu_f
        np.maximum(sigma2_sq, 0, out=sigma2_sq)
        for j, ref in enumerate(imgs[1:]):
            n, d = _vif_sums(_filter_valid(ref, g), _filter_valid(ref * ref, g),
                             _filter_valid(ref * f, g), mu_f, sigma2_sq)
            num[j] += n
            den[j] += d
    return [num_j / den_j if den_j > 0 else 1.0 for num_j, den_j in zip(num, den)]


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
    return float(sum(_vif_pairs(fused, [ir, vis])))


def _sobel_same(img: Array, border: int) -> Tuple[Array, Array]:
    """Sobel responses with one pixel of padding, 'same' size, in float32.

    For integer images on 0..255 every response, square and sum of squares is an integer
    below 2^24, so float32 holds them exactly: edge strengths compare exactly as in
    float64, and the rest of Qabf and Nabf runs in float32 like the Qabf reference
    (final values agree with float64 to about 1e-7).

    Returns ``(gx, gy)`` = the correlations of the padded image with
    ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and ``[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]``.
    The true convolutions with the Qabf reference's kernels ``[[-1,0,1],[-2,0,2],[-1,0,1]]``
    and ``[[1,2,1],[0,0,0],[-1,-2,-1]]`` are ``-gx`` and ``gy``.
    """
    img = img.astype(np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, borderType=border)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, borderType=border)
    return gx, gy


def _qabf_strength_angle(gx: Array, gy: Array) -> Tuple[Array, Array]:
    """Edge strength and orientation as the Qabf reference computes them."""
    sx, sy = -gx, gy  # the true convolutions with the reference's kernels
    # atan(Sy / Sx), and pi / 2 = atan(inf) where Sx = 0.
    ratio = np.divide(sy, sx, out=np.full(sx.shape, np.inf, sx.dtype), where=sx != 0)
    return np.sqrt(sx * sx + sy * sy), np.arctan(ratio, out=ratio)


def _qabf_preservation(g_a: Array, a_a: Array, g_f: Array, a_f: Array) -> Array:
    """Edge preservation Q_AF of source A in the fused image F."""
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = np.minimum(g_a, g_f) / np.maximum(g_a, g_f)
    # The reference sets G_AF = g_F where both strengths are equal (0 on flat areas), not
    # 1; kept for comparable numbers. Strengths are square roots of integers (for integer
    # images), so equality is exact.
    np.copyto(ratio, g_f, where=g_a == g_f)
    q_g = np.exp(-15 * (ratio - 0.5))
    q_g += 1
    orientation = np.abs(a_a - a_f)
    orientation *= np.float32(2 / np.pi)  # 1 - orientation is the reference's A_AF
    q_a = np.exp(22 * (orientation - np.float32(0.2)))  # e^(-22 (A_AF - 0.8))
    q_a += 1
    q_g *= q_a
    return np.divide(0.9994 * 0.9879, q_g, out=q_g)


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
    grads = [_sobel_same(img, cv2.BORDER_CONSTANT) for img in (fused, ir, vis)]
    num = 0.0
    den = 0.0
    for rows in _row_blocks(fused.shape[0]):
        (g_f, a_f), (g_a, a_a), (g_b, a_b) = (
            _qabf_strength_angle(gx[rows], gy[rows]) for gx, gy in grads)
        q = _qabf_preservation(g_a, a_a, g_f, a_f)
        q *= g_a
        num += float(q.sum())
        q = _qabf_preservation(g_b, a_b, g_f, a_f)
        q *= g_b
        num += float(q.sum())
        den += float(g_a.sum() + g_b.sum())
    return num / den if den > 0 else float('nan')


def _nabf_angle(gh: Array, gv: Array) -> Array:
    """Edge orientation atan(gv / gh) of the (already / 8) Sobel responses: +-pi/2 where
    only gh = 0, and 0 where both are 0."""
    ratio = np.divide(gv, gh, out=np.copysign(np.full(gh.shape, np.inf, gh.dtype), gv),
                      where=gh != 0)
    ratio[(gh == 0) & (gv == 0)] = 0
    return np.arctan(ratio, out=ratio)


def _nabf_preservation(g_a: Array, a_a: Array, g_f: Array, a_f: Array) -> Array:
    """Kumar's edge preservation Q_AF = sqrt(Q_g Q_a)."""
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = np.minimum(g_a, g_f) / np.maximum(g_a, g_f)
    ratio[(g_a == 0) | (g_f == 0)] = 0
    orientation = np.abs(np.abs(a_a - a_f) - np.pi / 2) * (2 / np.pi)
    q_g = 0.9999 / (1 + np.exp(-19 * (ratio - 0.5)))
    q_a = 0.9995 / (1 + np.exp(-22 * (orientation - 0.5)))
    q_g *= q_a
    return np.sqrt(q_g, out=q_g)


def nabf(fused: Array, ir: Array, vis: Array, border: str = 'reflect') -> float:
    """Nabf: the noise/artifact rate that fusion adds (Kumar's modified measure).

    Edges stronger in F than in both sources count as artifacts:
    Nabf = sum(na ((1 - Q_AF) w_A + (1 - Q_BF) w_B)) / sum(w_A + w_B), na = [g_F > g_A and
    g_F > g_B], w = g^1.5 where g >= 2 else 0.001, with Sobel kernels / 8;
    Q_AF = sqrt(Q_g Q_a) with Q_g = 0.9999 / (1 + e^(-19 (G - 0.5))),
    Q_a = 0.9995 / (1 + e^(-22 (A - 0.5))), A = ||a_A - a_F| - pi/2| * 2/pi. Lower is better.

    The border: it is usually described as one-pixel border replication, but Kumar's published
    code (``per_extn_im_fn`` before ``sobel_fn``) and its Python ports copy the second row
    and column outwards, i.e. mirror without repeating the edge pixel; ``'reflect'`` (the
    default) does that, for numbers comparable with published tables, and ``'replicate'``
    repeats the edge pixel. Only the outermost pixels differ. (Kumar calls the x-derivative
    ``gv`` and takes atan(gv / gh), the inverse ratio of ours; A is unchanged by that,
    since it only depends on the angle difference modulo pi up to sign.)

    Args:
        fused (np.ndarray): (H, W) fused gray image, 0..255.
        ir (np.ndarray): (H, W) infrared gray image, 0..255.
        vis (np.ndarray): (H, W) visible gray image, 0..255.
        border (str): 'reflect' or 'replicate', the padding of the Sobel filters.
            Defaults to 'reflect'.

    Returns:
        float: Nabf, in [0, 1].
    """
    _check_same_shape(fused, ir, vis)
    borders = {'reflect': cv2.BORDER_REFLECT_101, 'replicate': cv2.BORDER_REPLICATE}
    if border not in borders:
        raise ValueError(f"border must be 'reflect' or 'replicate', got {border!r}")
    grads = [tuple(g / 8 for g in _sobel_same(img, borders[border]))
             for img in (fused, ir, vis)]
    penalty = 0.0
    weight_sum = 0.0
    for rows in _row_blocks(fused.shape[0]):
        block = [(gh[rows], gv[rows]) for gh, gv in grads]
        g_f, g_a, g_b = (np.sqrt(gh * gh + gv * gv) for gh, gv in block)
        w_a = np.where(g_a >= 2, g_a ** 1.5, 0.001)
        w_b = np.where(g_b >= 2, g_b ** 1.5, 0.001)
        weight_sum += float(w_a.sum() + w_b.sum())
        artifact = (g_f > g_a) & (g_f > g_b)
        if artifact.any():
            # Orientations matter only where F has the strongest edge: computed there alone.
            a_f, a_a, a_b = (_nabf_angle(gh[artifact], gv[artifact]) for gh, gv in block)
            g_f = g_f[artifact]
            q_af = _nabf_preservation(g_a[artifact], a_a, g_f, a_f)
            q_bf = _nabf_preservation(g_b[artifact], a_b, g_f, a_f)
            penalty += float(np.sum((1 - q_af) * w_a[artifact] + (1 - q_bf) * w_b[artifact]))
    return penalty / weight_sum


def _ssim_pairs(fused: Array, refs: Sequence[Array], data_ranges: Sequence[float]) -> Array:
    """Mean SSIM(F, R) of each reference R (rows) for each data range (columns).

    scikit-image's ``structural_similarity`` with its defaults: 7 x 7 uniform window, sample
    covariance, mean over the map without its 3-pixel border (the part that padding does
    not reach, so 'valid' box sums give exactly that part). Box sums of integer images are
    exact in float64, so the local means equal scikit-image's running means up to their
    own rounding.
    """
    win = 7
    if min(fused.shape) < win:
        raise ValueError(f'SSIM needs images of at least {win} x {win} pixels, got '
                         f'{fused.shape}')
    area = win * win
    cov_norm = area / (area - 1)  # sample covariance

    def local_mean(img: Array) -> Array:
        out = cv2.boxFilter(img, cv2.CV_64F, (win, win), normalize=False,
                            borderType=cv2.BORDER_CONSTANT)
        pad = win // 2
        out = out[pad:out.shape[0] - pad, pad:out.shape[1] - pad]
        out /= area
        return out

    mean_f = local_mean(fused)
    mean_ff = local_mean(fused * fused)
    constants = [((0.01 * r) ** 2, (0.03 * r) ** 2) for r in data_ranges]
    means = np.zeros((len(refs), len(data_ranges)))
    for j, ref in enumerate(refs):
        mean_r = local_mean(ref)
        mean_rr = local_mean(ref * ref)
        mean_fr = local_mean(fused * ref)
        for rows in _row_blocks(mean_f.shape[0]):
            ux, uy = mean_f[rows], mean_r[rows]
            uxy = ux * uy
            mu_sq = ux * ux
            mu_sq += uy * uy
            var_sum = mean_ff[rows] + mean_rr[rows]
            var_sum -= mu_sq
            var_sum *= cov_norm
            two_cov = mean_fr[rows] - uxy
            two_cov *= 2 * cov_norm
            uxy *= 2  # now 2 ux uy
            num = np.empty_like(uxy)
            den = np.empty_like(uxy)
            tmp = np.empty_like(uxy)
            for i, (c1, c2) in enumerate(constants):
                np.add(uxy, c1, out=num)
                num *= np.add(two_cov, c2, out=tmp)
                np.add(mu_sq, c1, out=den)
                den *= np.add(var_sum, c2, out=tmp)
                num /= den
                means[j, i] += float(num.sum())
    return means / mean_f.size


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
    'SSIM_dr2': functools.partial(ssim, data_range=2.0),
    'SSIM_dr255': functools.partial(ssim, data_range=255.0),
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
    if 'CC' in names or 'SCD' in names:
        results['CC'], results['SCD'] = _cc_and_scd(fused, ir, vis)
    for name in names:
        if name not in results:
            results[name] = FUSION_METRICS[name](fused, ir, vis)
    return {name: results[name] for name in names}
