"""LDFusion's MUNIT-style fusion network."""
import pytest
import torch

from mmrisfusion.models.fusers import LDFusionNet
from mmrisfusion.registry import MODELS


def test_published_sizes():
    net = MODELS.build(dict(type='LDFusionNet'))
    assert net.vis_encoder.content_channels == 128
    assert net.num_adain_params == 2048
    assert [m.out_features for m in net.mlp if isinstance(m, torch.nn.Linear)] == [256, 256,
                                                                                   2048]
    assert net.mlp[0].in_features == 16
    ups = [m for m in net.upsample if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
            for m in ups] == [(256, 128, (5, 5), (2, 2), (0, 0)),
                              (128, 64, (5, 5), (2, 2), (0, 0)),
                              (64, 32, (5, 5), (2, 2), (0, 0))]
    content, style = net.ir_encoder(torch.rand(1, 1, 64, 64))
    assert content.shape == (1, 128, 8, 8) and style.shape == (1, 8)
    convs = torch.cat([m.weight.flatten() for m in net.modules()
                       if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert convs.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize('size', [(64, 64), (37, 50)])
def test_output_and_gradients(size):
    torch.manual_seed(0)
    net = LDFusionNet(base_channels=4, mlp_channels=16)
    vis = torch.rand(2, 1, *size, requires_grad=True)
    ir = torch.rand(2, 1, *size, requires_grad=True)
    fused = net(vis, ir)
    assert fused.shape == (2, 1, *size)
    assert fused.min() >= 0 and fused.max() <= 1
    fused.mean().backward()
    assert vis.grad.abs().sum() > 0 and ir.grad.abs().sum() > 0


def test_bad_input():
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\)'):
        LDFusionNet(base_channels=4)(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
