"""The fusion-quality functions against the published evaluator's numbers and hand values."""
import json
import math

import numpy as np
import pytest

from mmrisfusion.evaluation.functional import (
    FUSION_METRICS,
    average_gradient,
    compute_fusion_metrics,
    correlation_coefficient,
    entropy,
    imread_gray,
    mse,
    mutual_information,
    nabf,
    psnr,
    qabf,
    rgb_to_gray,
    scd,
    spatial_frequency,
    ssim,
    standard_deviation,
    vif,
)

REL_TOL = 1e-4
ABS_TOL = 1e-6
METHODS = ['tno_mean', 'tno_max']


def _compare_with_published(reference_folder, tno_folder, method, count):
    """Every metric of every image of ``tno_reference.json`` within 1e-4 relative of the
    published evaluator, for the fused images of ``method``."""
    with open(reference_folder / 'tno_reference.json') as file:
        images = json.load(file)['images'][method]
    assert len(images) == count
    names = sorted({name for values in images.values() for name in values})
    # The reference covers all our metrics except Nabf (tested against a loop version below).
    assert set(names) == set(FUSION_METRICS) - {'Nabf'}
    failures = []
    for file_name, expected in sorted(images.items()):
        fused = imread_gray(reference_folder / method / file_name)
        ir = imread_gray(tno_folder / 'ir' / file_name)
        vis = imread_gray(tno_folder / 'vi' / file_name)
        got = compute_fusion_metrics(fused, ir, vis, names)
        for name in names:
            if not math.isclose(got[name], expected[name], rel_tol=REL_TOL, abs_tol=ABS_TOL):
                failures.append(f'{file_name} {name}: got {got[name]!r}, '
                                f'expected {expected[name]!r}')
    assert not failures, '\n'.join(failures)


@pytest.mark.parametrize('method', METHODS)
def test_matches_published_evaluator_on_kept_images(data_dir, method):
    """The published evaluator's values of the three TNO pairs in tests/data."""
    _compare_with_published(data_dir / 'fusion_metrics', data_dir / 'ivif' / 'tno', method, 3)


@pytest.mark.parametrize('method', METHODS)
def test_matches_published_evaluator_on_all_tno_images(reference_dir, ivif_benchmark_dir,
                                                      method):
    """All 25 TNO pairs, where the published reference and the pairs are at hand."""
    _compare_with_published(reference_dir / 'fusion_metrics', ivif_benchmark_dir / 'tno',
                            method, 25)


def test_single_functions_agree_with_compute_fusion_metrics(data_dir):
    dirs = data_dir / 'ivif' / 'tno'
    ir = imread_gray(dirs / 'ir' / '07.png')
    vis = imread_gray(dirs / 'vi' / '07.png')
    fused = np.maximum(ir, vis)
    together = compute_fusion_metrics(fused, ir, vis)
    assert list(together) == list(FUSION_METRICS)
    singles = {
        'EN': entropy(fused), 'SD': standard_deviation(fused), 'SF': spatial_frequency(fused),
        'AG': average_gradient(fused), 'MI': mutual_information(fused, ir, vis),
        'SCD': scd(fused, ir, vis), 'VIF': vif(fused, ir, vis), 'Qabf': qabf(fused, ir, vis),
        'SSIM_dr2': ssim(fused, ir, vis, data_range=2),
        'SSIM_dr255': ssim(fused, ir, vis, data_range=255), 'PSNR': psnr(fused, ir, vis),
        'CC': correlation_coefficient(fused, ir, vis), 'MSE': mse(fused, ir, vis),
        'Nabf': nabf(fused, ir, vis)}
    for name, value in singles.items():
        assert isinstance(together[name], float)
        assert together[name] == pytest.approx(value, rel=1e-12), name


def test_hand_computed_values():
    ramp = np.tile(np.arange(16, dtype=np.float64), (12, 1))  # F[i, j] = j
    assert spatial_frequency(ramp) == pytest.approx(1.0)
    assert average_gradient(ramp) == pytest.approx(math.sqrt(0.5))
    assert standard_deviation(ramp) == pytest.approx(np.arange(16).std())
    assert entropy(ramp) == pytest.approx(4.0)  # 16 equally likely levels
    assert entropy(np.full((8, 8), 7.0)) == 0.0

    halves = np.zeros((8, 8))
    halves[:, 4:] = 200
    # identical images: MI = H = ln 2 per pair (nats)
    assert mutual_information(halves, halves, halves) == pytest.approx(2 * math.log(2))
    assert mutual_information(halves, halves.T, halves) == pytest.approx(math.log(2))

    fused, ir, vis = np.full((8, 8), 100.0), np.full((8, 8), 90.0), np.full((8, 8), 110.0)
    assert mse(fused, ir, vis) == pytest.approx(100.0)
    assert psnr(fused, ir, vis) == pytest.approx(20.0)


def test_identical_images_give_the_ideal_values():
    rng = np.random.default_rng(0)
    img = np.round(rng.uniform(0, 255, (48, 56)))
    assert correlation_coefficient(img, img, img) == pytest.approx(1.0)
    assert ssim(img, img, img, data_range=2) == pytest.approx(2.0)
    assert ssim(img, img, img, data_range=255) == pytest.approx(2.0)
    assert vif(img, img, img) == pytest.approx(2.0, rel=1e-6)
    assert nabf(img, img, img) == 0.0  # no edge is stronger than in both sources
    other = np.round(rng.uniform(0, 255, (48, 56)))
    assert scd(img + other, img, other) == pytest.approx(2.0)  # F - VIS = IR, F - IR = VIS
    assert math.isnan(correlation_coefficient(np.full((8, 8), 3.0), img[:8, :8],
                                              img[:8, :8]))


def _nabf_loops(fused, ir, vis, border):
    """Kumar's modified Nabf written pixel by pixel from his published description, with his
    names: ``gv`` is the response to the x-derivative kernel and the angle is atan(gv / gh).
    """

    def extend(x):
        if border == 'replicate':
            return np.pad(x, 1, mode='edge')
        # per_extn_im_fn: the second row / column copied outwards (mirror without the edge)
        ext = np.pad(x, 1)
        ext[0], ext[-1] = ext[2], ext[-3]
        ext[:, 0], ext[:, -1] = ext[:, 2], ext[:, -3]
        return ext

    def sobel(x):
        h, w = x.shape
        ext = extend(x)
        gv = np.zeros((h, w))
        gh = np.zeros((h, w))
        kv = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
        kh = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
        for i in range(h):
            for j in range(w):
                for a in range(3):
                    for b in range(3):
                        gv[i, j] += kv[a][b] * ext[i + a, j + b] / 8
                        gh[i, j] += kh[a][b] * ext[i + a, j + b] / 8
        return gv, gh

    def strength_angle(x):
        gv, gh = sobel(x)
        g = np.sqrt(gv ** 2 + gh ** 2)
        a = np.zeros_like(g)
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                if gv[i, j] == 0 and gh[i, j] == 0:
                    a[i, j] = 0
                elif gh[i, j] == 0:
                    a[i, j] = math.copysign(math.pi / 2, gv[i, j])
                else:
                    a[i, j] = math.atan(gv[i, j] / gh[i, j])
        return g, a

    gf, af = strength_angle(fused)
    penalty = 0.0
    weight_sum = 0.0
    sources = [strength_angle(ir), strength_angle(vis)]
    for i in range(fused.shape[0]):
        for j in range(fused.shape[1]):
            q = []
            w = []
            for gs, as_ in sources:
                if gs[i, j] == 0 or gf[i, j] == 0:
                    g_ratio = 0.0
                elif gs[i, j] > gf[i, j]:
                    g_ratio = gf[i, j] / gs[i, j]
                else:
                    g_ratio = gs[i, j] / gf[i, j]
                a_ratio = abs(abs(as_[i, j] - af[i, j]) - math.pi / 2) * 2 / math.pi
                qg = 0.9999 / (1 + math.exp(-19 * (g_ratio - 0.5)))
                qa = 0.9995 / (1 + math.exp(-22 * (a_ratio - 0.5)))
                q.append(math.sqrt(qg * qa))
                w.append(gs[i, j] ** 1.5 if gs[i, j] >= 2 else 0.001)
            weight_sum += w[0] + w[1]
            if gf[i, j] > sources[0][0][i, j] and gf[i, j] > sources[1][0][i, j]:
                penalty += (1 - q[0]) * w[0] + (1 - q[1]) * w[1]
    return penalty / weight_sum


@pytest.mark.parametrize('border', ['reflect', 'replicate'])
def test_nabf_matches_a_pixel_loop(border):
    rng = np.random.default_rng(1)
    ir = np.round(rng.uniform(0, 255, (14, 17)))
    vis = np.round(rng.uniform(0, 255, (14, 17)))
    vis[:, :5] = 40  # flat part: zero gradients and the 0/0 angle case
    for fused in (np.maximum(ir, vis), np.round(rng.uniform(0, 255, (14, 17)))):
        expected = _nabf_loops(fused, ir, vis, border)
        assert expected > 0
        got = nabf(fused, ir, vis, border=border)
        assert got == pytest.approx(expected, rel=1e-6)  # float32 inside
    # Sobel is linear: the average's gradient is never stronger than both sources' ones.
    mean = (ir + vis) / 2
    assert nabf(mean, ir, vis, border=border) == _nabf_loops(mean, ir, vis, border) == 0.0
    assert FUSION_METRICS['Nabf'](fused, ir, vis) == nabf(fused, ir, vis, border='reflect')
    with pytest.raises(ValueError, match='reflect'):
        nabf(fused, ir, vis, border='wrap')


def test_nabf_border_conventions_differ_slightly():
    rng = np.random.default_rng(2)
    ir, vis, fused = (np.round(rng.uniform(0, 255, (30, 40))) for _ in range(3))
    assert nabf(fused, ir, vis, 'reflect') != nabf(fused, ir, vis, 'replicate')
    assert nabf(fused, ir, vis, 'reflect') == pytest.approx(nabf(fused, ir, vis, 'replicate'),
                                                            rel=0.2)


def test_gray_conversion_is_opencv_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    gray = rgb_to_gray(rgb, channel_order='rgb')
    assert gray.dtype == np.float64
    np.testing.assert_array_equal(gray, [[76, 150, 29, 18]])
    np.testing.assert_array_equal(rgb_to_gray(rgb[..., ::-1].copy(), channel_order='bgr'), gray)
    np.testing.assert_array_equal(rgb_to_gray(rgb[..., :1]), rgb[..., 0])


def test_bad_input_errors(tmp_path):
    img = np.zeros((50, 50))
    with pytest.raises(ValueError, match='one shape'):
        compute_fusion_metrics(img, img, np.zeros((50, 51)))
    with pytest.raises(KeyError, match='SSIM_dr2'):
        compute_fusion_metrics(img, img, img, ['SSIM'])
    with pytest.raises(ValueError, match='41 x 41'):
        vif(np.zeros((30, 60)), np.zeros((30, 60)), np.zeros((30, 60)))
    with pytest.raises(TypeError, match='uint8'):
        rgb_to_gray(np.zeros((4, 4, 3), dtype=np.float32))
    missing = tmp_path / 'nope.png'
    with pytest.raises(FileNotFoundError, match='nope.png'):
        imread_gray(missing)
