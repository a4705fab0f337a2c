"""LDFusion's MUNIT-style fusion network and the conversion of the published weights."""
import json

import pytest
import torch

from mmrisfusion.models.fusers import LDFusionNet
from mmrisfusion.models.utils import convert_ldfusion_official, to_ldfusion_official
from mmrisfusion.registry import MODELS

#: Parameters of the published network (Encoder + Decoder).
PUBLISHED_PARAMETERS = 5_776_977


def test_published_sizes():
    net = MODELS.build(dict(type='LDFusionNet'))
    assert sum(p.numel() for p in net.parameters()) == PUBLISHED_PARAMETERS
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


def test_padding_and_initialisation_as_published():
    torch.manual_seed(0)
    net = LDFusionNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # Only the stride-2 convolutions pad with zeros; the 7x7 and 3x3 ones reflect.
    for conv in convs:
        expected = 'zeros' if conv.stride == (2, 2) or conv.padding == (0, 0) else 'reflect'
        assert conv.padding_mode == expected, conv
    assert sum(conv.stride == (2, 2) for conv in convs) == 12  # 3 per path, 4 paths
    weights = torch.cat([m.weight.flatten() for m in net.modules()
                         if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    # Biases keep PyTorch's default init U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not zeros.
    first = net.vis_encoder.content[0].conv
    assert 0 < first.bias.abs().max() <= 1 / 7
    gammas = torch.cat([m.gamma for m in net.upsample if hasattr(m, 'gamma')])
    assert 0 <= gammas.min() and gammas.max() <= 1 and gammas.std() > 0.1  # U(0, 1)


@pytest.mark.parametrize('size', [(64, 64), (37, 50)])
def test_output_crop(size):
    """The decoder overshoots to 8 floor(H / 8) + 21; the published cut keeps [:H, :W]."""
    torch.manual_seed(0)
    net = LDFusionNet(base_channels=4, mlp_channels=16)
    vis = torch.rand(2, 1, *size, requires_grad=True)
    ir = torch.rand(2, 1, *size, requires_grad=True)
    full = net.decode(*net.encode(vis, ir))
    assert full.shape[-2:] == tuple(8 * (s // 8) + 21 for s in size)
    fused = net(vis, ir)
    assert net.output_crop == 'top_left'
    torch.testing.assert_close(fused, full[..., :size[0], :size[1]], rtol=0, atol=0)
    assert fused.min() >= 0 and fused.max() <= 1
    fused.mean().backward()
    assert vis.grad.abs().sum() > 0 and ir.grad.abs().sum() > 0

    net.output_crop = 'center'
    top, left = ((f - s) // 2 for f, s in zip(full.shape[-2:], size))
    torch.testing.assert_close(net(vis, ir),
                               full[..., top:top + size[0], left:left + size[1]])
    with pytest.raises(ValueError, match='output_crop'):
        LDFusionNet(output_crop='middle')


def test_bad_input():
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\)'):
        LDFusionNet(base_channels=4)(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


def published_layout(data_dir, seed=0):
    """Random tensors with the keys and shapes of the published Enc / Dec state dicts."""
    keys = json.loads((data_dir / 'ldfusion' / 'keys_official.json').read_text())
    gen = torch.Generator().manual_seed(seed)
    return [{key: torch.randn(*shape, generator=gen) for key, shape in keys[part].items()}
            for part in ('Enc', 'Dec')]


def test_convert_the_published_layout(data_dir):
    enc, dec = published_layout(data_dir)
    state_dict, cfg = convert_ldfusion_official(enc, dec)
    assert cfg == dict(type='LDFusionNet', base_channels=16, num_downsample=3, num_res=2,
                       style_channels=64, style_dim=8, mlp_channels=256)
    net = MODELS.build(cfg)
    net.load_state_dict(state_dict, strict=True)
    # Every published parameter is used; only the decoder's dummy AdaIN buffers are not.
    used = sum(v.numel() for v in state_dict.values())
    assert used == PUBLISHED_PARAMETERS
    unused = set(enc) | set(dec)
    unused -= {k for k in unused if not k.endswith(('running_mean', 'running_var'))}
    assert len(unused) == 8
    for theirs, ours in [('content_encoder1.model.1.weight', 'vis_encoder.content.0.conv.weight'),
                         ('content_encoder2.model.10.bias', 'ir_encoder.content.3.conv.bias'),
                         ('content_encoder1.model.14.block.5.weight',
                          'vis_encoder.content.5.block.1.conv.weight'),
                         ('style_encoder2.model.10.weight', 'ir_encoder.style.5.weight'),
                         ('style_encoder1.model.7.weight', 'vis_encoder.style.3.conv.weight')]:
        assert torch.equal(state_dict[ours], enc[theirs]), theirs
    for theirs, ours in [('model_local.1.block.1.weight', 'adain_blocks.1.conv1.conv.weight'),
                         ('model_up.6.weight', 'upsample.6.weight'),
                         ('model_up.7.gamma', 'upsample.7.gamma'),
                         ('model_up.10.bias', 'head.conv.bias'),
                         ('mlp.model.4.weight', 'mlp.4.weight')]:
        assert torch.equal(state_dict[ours], dec[theirs]), theirs

    # A DistributedDataParallel prefix is removed; a stray tensor is an error.
    wrapped, _ = convert_ldfusion_official({f'module.{k}': v for k, v in enc.items()}, dec)
    assert wrapped.keys() == state_dict.keys()
    with pytest.raises(KeyError, match='no place'):
        convert_ldfusion_official(enc, {**dec, 'extra.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='encoder'):
        convert_ldfusion_official(dec, enc)
    with pytest.raises(TypeError, match='state dict of tensors'):
        convert_ldfusion_official({'Enc': enc}, dec)


def test_export_to_the_published_layout_round_trips(data_dir):
    """Our weights under the published names (for the published test script), and back."""
    torch.manual_seed(0)
    net = LDFusionNet()
    enc, dec = to_ldfusion_official(net.state_dict())
    keys = json.loads((data_dir / 'ldfusion' / 'keys_official.json').read_text())
    assert {k: list(v.shape) for k, v in enc.items()} == keys['Enc']
    assert {k: list(v.shape) for k, v in dec.items()} == keys['Dec']
    back, cfg = convert_ldfusion_official(enc, dec)
    assert cfg['base_channels'] == 16 and back.keys() == net.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in net.state_dict().items())
    # A FusionModel checkpoint's 'fuser.' prefix is accepted; a foreign tensor is not.
    prefixed = {f'fuser.{k}': v for k, v in net.state_dict().items()}
    assert to_ldfusion_official(prefixed)[0].keys() == enc.keys()
    with pytest.raises(KeyError, match='decode_head.conv'):
        to_ldfusion_official({**net.state_dict(), 'decode_head.conv.weight': torch.zeros(1)})
