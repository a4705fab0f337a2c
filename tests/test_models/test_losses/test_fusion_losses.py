import pytest
import torch
import torch.nn.functional as F

from mmrisfusion.models.losses import (
    JointGradientLoss,
    LumaMSELoss,
    SobelL1Loss,
    SSIMLoss,
    fusion_luma,
    sobel_magnitudes,
)
from mmrisfusion.registry import MODELS

# The published run: lambda 3.0 and these term weights (docs/risfusion.md#fusion-loss).
LAMBDA = 3.0
PUBLISHED = [('SSIMLoss', 'vis', 0.5), ('LumaMSELoss', 'vis', 0.5), ('LumaMSELoss', 'ir', 2.0),
             ('SobelL1Loss', 'ir', 1.0), ('JointGradientLoss', None, 1.0)]
# io_tiny's term names; its 'pf_ssim_*' entries log SSIM itself, the loss uses 1 - SSIM.
TERMS = {'pf_ssim_vis': dict(type='SSIMLoss', source='vis'),
         'pf_ssim_ir': dict(type='SSIMLoss', source='ir'),
         'pf_mse_vis': dict(type='LumaMSELoss', source='vis'),
         'pf_mse_ir': dict(type='LumaMSELoss', source='ir'),
         'pf_sobel_vis': dict(type='SobelL1Loss', source='vis'),
         'pf_sobel_ir': dict(type='SobelL1Loss', source='ir'),
         'pf_grad': dict(type='JointGradientLoss')}


def _published_terms(scale):
    terms = []
    for loss_type, source, weight in PUBLISHED:
        cfg = dict(type=loss_type, loss_weight=scale * weight)
        if source is not None:
            cfg['source'] = source
        terms.append(MODELS.build(cfg))
    return terms


@pytest.fixture(scope='module')
def io_and_lumas(tiny_reference):
    io = tiny_reference.io
    return io, fusion_luma(io['fused'], io['vis'], io['ir'])


def _published_ssim_window(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The published 11x11 window: the normalised float32 Gaussian (sigma 1.5), its outer
    product taken in ``dtype``."""
    coords = torch.arange(11.0) - 5
    gauss = torch.exp(-coords**2 / (2 * 1.5**2))
    gauss = (gauss / gauss.sum()).to(dtype)
    return (gauss[:, None] * gauss[None, :])[None, None]


def _published_ssim(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """The published SSIM: 2-D convolutions with zero padding 5, C1 = .01^2, C2 = .03^2."""
    mx, my = F.conv2d(x, window, padding=5), F.conv2d(y, window, padding=5)
    sxx = F.conv2d(x * x, window, padding=5) - mx**2
    syy = F.conv2d(y * y, window, padding=5) - my**2
    sxy = F.conv2d(x * y, window, padding=5) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * sxy + c2) /
            ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()


@pytest.mark.parametrize('key', sorted(TERMS))
def test_each_term_reproduces_reference(io_and_lumas, key):
    io, lumas = io_and_lumas
    value = MODELS.build(TERMS[key])(*lumas)
    expected = io['fusion_loss_terms'][key]
    if key.startswith('pf_ssim'):
        expected = 1 - expected
    # The published float32 SSIM (11x11 convolutions) is itself 1.3e-5 from its float64
    # value (variance = E[x^2] - mu^2 cancels digits); ours is much closer (next test), and
    # the derived reference's terms are float64 values.
    assert (value - expected).abs().item() <= (5e-5 if key.startswith('pf_ssim') else 1e-5)


def test_ssim_matches_float64_published_formula(io_and_lumas):
    """The separable SSIM equals the published 2-D formula evaluated in float64.

    Both use the float32 Gaussian weights: their rounding alone moves SSIM by ~3e-6.
    """
    _, (fused, vis, ir) = io_and_lumas
    window = _published_ssim_window(torch.float64)
    for ref in (vis, ir):
        exact = _published_ssim(fused.double(), ref.double(), window)
        assert abs(SSIMLoss().ssim(fused, ref).item() - exact.item()) < 1e-6


def test_raw_and_weighted_totals_reproduce_reference(io_and_lumas):
    io, lumas = io_and_lumas
    raw = sum(term(*lumas) for term in _published_terms(1.0))
    weighted = sum(term(*lumas) for term in _published_terms(LAMBDA))
    # Within the published float32 SSIM's own rounding error (see above), times lambda.
    assert (raw - io['fusion_loss_raw']).abs().item() <= 5e-5
    assert (raw - io['fusion_loss_terms']['pf_total']).abs().item() <= 5e-5
    assert (weighted - io['fusion_loss_weighted']).abs().item() <= LAMBDA * 5e-5


def test_loss_names_are_distinct():
    names = [term.loss_name for term in _published_terms(1.0)]
    assert names == ['loss_ssim_vis', 'loss_mse_vis', 'loss_mse_ir', 'loss_sobel_ir',
                     'loss_grad']
    assert SSIMLoss('ir', loss_name='loss_x').loss_name == 'loss_x'


def test_identical_images_give_zero_and_source_is_chosen():
    g = torch.Generator().manual_seed(0)
    vis, ir = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    for loss in (SSIMLoss, LumaMSELoss, SobelL1Loss):
        assert loss('vis')(vis, vis, ir).abs().item() < 1e-5
        assert loss('ir')(vis, vis, ir).item() > 1e-3
        assert loss('ir')(ir, vis, ir).abs().item() < 1e-5
    torch.testing.assert_close(SSIMLoss('vis').ssim(vis, vis), torch.tensor(1.0))
    # without IR gradients the joint target is the VIS gradient
    flat = torch.zeros_like(ir)  # zero padding: only a zero image has no gradient at all
    fused = torch.rand(2, 1, 16, 16, generator=g)
    torch.testing.assert_close(JointGradientLoss()(fused, vis, flat),
                               SobelL1Loss('vis')(fused, vis, flat))
    (fx, fy), (vx, vy), (ix, iy) = map(sobel_magnitudes, (fused, vis, ir))
    expected = (fx - vx.max(ix)).abs().mean() + (fy - vy.max(iy)).abs().mean()
    torch.testing.assert_close(JointGradientLoss(loss_weight=2.0)(fused, vis, ir), 2 * expected)


def test_sobel_and_ssim_definitions():
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]  # d/dx = 1
    gx, gy = sobel_magnitudes(ramp)
    assert (gx[..., 1:-1, 1:-1] == 8).all() and (gy[..., 1:-1, 1:-1] == 0).all()
    ssim = SSIMLoss()
    for shape in ((1, 1, 12, 12), (2, 1, 5, 7)):  # also smaller than the window
        x, y = torch.rand(shape), torch.rand(shape)
        torch.testing.assert_close(ssim.ssim(x, y), _published_ssim(x, y, _published_ssim_window()))


def test_gradients_flow_to_fused():
    fused = torch.rand(1, 1, 16, 16, requires_grad=True)
    vis, ir = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    sum(term(fused, vis, ir) for term in _published_terms(LAMBDA)).backward()
    assert fused.grad.abs().sum() > 0


def test_fusion_luma_denormalises_and_reduces():
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    img = torch.rand(1, 3, 4, 4)
    norm = (img - mean[:, None, None]) / std[:, None, None]
    f, v, i = fusion_luma(norm, norm, norm)
    expected = 0.299 * img[:, :1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:]
    for out in (f, v, i):
        torch.testing.assert_close(out, expected)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="source must be one of"):
        SSIMLoss('rgb')
    with pytest.raises(ValueError, match='odd'):
        SSIMLoss(window_size=10)
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\) luma'):
        LumaMSELoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match='loss_'):
        JointGradientLoss(loss_name='grad')


def _real_lumas(data_dir, name: str):
    """Luma in [0, 1] of a real VIS/IR pair of tests/data, (1, 1, H, W) float32."""
    import cv2
    pair = []
    for role in ('vi', 'ir'):
        image = cv2.imread(str(data_dir / 'ivif' / 'tno' / role / name), cv2.IMREAD_COLOR)
        rgb = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        pair.append(0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:])
    return pair


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_terms_are_float32_under_autocast(data_dir, dtype):
    """Under bf16 and fp16 autocast every RIS-FUSION term gives its float32 value and gradient
    (within 1e-3): the terms run in float32 with autocast off. In low precision SSIM's
    variances E[x^2] - mu^2 and the Sobel differences lose their digits."""
    vis, ir = _real_lumas(data_dir, '07.png')  # 256 x 256
    generator = torch.Generator().manual_seed(0)
    start = (0.5 * (vis + ir) + 0.05 * torch.randn(vis.shape, generator=generator)).clamp(0, 1)
    terms = [SSIMLoss('vis'), SSIMLoss('ir'), LumaMSELoss('vis'), LumaMSELoss('ir'),
             SobelL1Loss('vis'), SobelL1Loss('ir'), JointGradientLoss()]
    for term in terms:
        results = []
        for autocast in (False, True):
            fused = start.clone().requires_grad_()
            with torch.autocast('cpu', dtype=dtype, enabled=autocast):
                value = term(fused, vis, ir)
            value.backward()
            results.append((value.detach(), fused.grad))
        (value32, grad32), (value, grad) = results
        assert value.dtype == torch.float32
        assert abs(float(value) - float(value32)) <= 1e-3 * max(1.0, abs(float(value32))), \
            (term.loss_name, float(value), float(value32))
        relative = float((grad - grad32).norm() / grad32.norm())
        assert relative <= 1e-3, (term.loss_name, relative)


def test_sobel_equals_the_published_convolution():
    """The shifted-view Sobel gives conv2d's values and gradients with the published kernels."""
    kernels = torch.tensor([[[[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]],
                            [[[1., 2., 1.], [0., 0., 0.], [-1., -2., -1.]]]], dtype=torch.float64)
    img = torch.rand(3, 1, 17, 12, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 3, 1, 17, 12, dtype=torch.float64)
    ours = sobel_magnitudes(img)
    published = F.conv2d(img, kernels, padding=1).abs().split(1, dim=1)
    for a, b in zip(ours, published):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    grad_ours, = torch.autograd.grad(sum((w * g).sum() for w, g in zip(weights, ours)), img)
    grad_published, = torch.autograd.grad(
        sum((w * g).sum() for w, g in zip(weights, published)), img)
    torch.testing.assert_close(grad_ours, grad_published, rtol=0, atol=1e-12)
