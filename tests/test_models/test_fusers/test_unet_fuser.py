import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmrisfusion.models.fusers import UNetFuser
from mmrisfusion.models.layers import BaseFusionBlock
from mmrisfusion.models.losses import (
    JointGradientLoss,
    LumaMSELoss,
    SobelL1Loss,
    SSIMLoss,
    fusion_luma,
)
from mmrisfusion.models.utils import convert_official_fuser, normalize, rgb_to_luma, rgb_to_ycbcr
from mmrisfusion.registry import MODELS

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _inputs(b=2, h=32, w=32, t=5, text_dim=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    vis = normalize(torch.rand(b, 3, h, w, generator=g), MEAN, STD)
    ir = normalize(torch.rand(b, 1, h, w, generator=g).expand(-1, 3, -1, -1), MEAN, STD)
    feats = torch.randn(b, t, text_dim, generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[0, 3:] = 0
    return vis, ir, feats, mask


def _tiny(**kwargs):
    cfg = dict(base_channels=4, text_dim=24, token_dim=16, num_heads=2,
               fusion_block=dict(type='LangGatedFusion', embed_dims=16, gate_channels=8))
    cfg.update(kwargs)
    return UNetFuser(**cfg)


def test_reproduces_reference_fused_image(tiny_reference):
    state_dict, io = tiny_reference.checkpoint['prefusion_model'], tiny_reference.io
    fuser = UNetFuser(base_channels=16).eval()
    fuser.load_state_dict(convert_official_fuser(state_dict), strict=True)
    with torch.no_grad():
        fused = fuser(io['vis'], io['ir'], io['text_feats'], io['text_mask'])
    assert (fused - io['fused']).abs().max().item() <= 1e-5


def test_full_size_parameter_count():
    # The published fuser has 4.0M parameters (docs/risfusion.md#model-size)
    assert sum(p.numel() for p in UNetFuser().parameters()) == 4_020_679


def test_output_keeps_vis_chroma():
    fuser = _tiny().eval()
    vis, ir, feats, mask = _inputs()
    with torch.no_grad():
        fused = fuser(vis, ir, feats, mask)
    assert fused.shape == vis.shape
    f01, v01 = fused * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None], \
        vis * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
    assert f01.min() >= -1e-6 and f01.max() <= 1 + 1e-6
    # where nothing was clamped, the chroma is the visible image's
    inside = ((f01 > 0.01) & (f01 < 0.99)).all(1, keepdim=True).expand(-1, 2, -1, -1)
    torch.testing.assert_close(rgb_to_ycbcr(f01)[:, 1:][inside],
                               rgb_to_ycbcr(v01)[:, 1:][inside], atol=1e-5, rtol=0)


@pytest.mark.parametrize('size', [(32, 32), (36, 44), (37, 29)])
def test_any_input_size(size):
    fuser = _tiny().eval()
    vis, ir, feats, mask = _inputs(h=size[0], w=size[1])
    assert fuser(vis, ir, feats, mask).shape == vis.shape


def test_text_changes_the_fusion():
    fuser = _tiny().eval()
    vis, ir, feats, mask = _inputs()
    with torch.no_grad():
        assert not torch.allclose(fuser(vis, ir, feats, mask), fuser(vis, ir, -feats, mask))


@pytest.mark.parametrize('block', ['AverageFusion', 'ConcatConvFusion', 'TextFreeGateFusion'])
def test_text_free_ablations(block):
    fuser = MODELS.build(dict(type='UNetFuser', base_channels=4, inject_levels=(1, 2, 3, 4),
                              fusion_block=dict(type=block)))
    assert not fuser.requires_text and fuser.net.txt is None
    vis, ir, _, _ = _inputs()
    assert fuser(vis, ir).shape == vis.shape


def test_injection_levels_are_configurable():
    fuser = _tiny(inject_levels=(2, ))
    names = {k.split('.')[1] for k in fuser.state_dict() if '.lang_l' in k}
    assert names == {'lang_l2'}
    with pytest.raises(ValueError, match='levels 1..4'):
        _tiny(inject_levels=(5, ))
    with pytest.raises(KeyError, match='NoSuchBlock'):
        _tiny(fusion_block=dict(type='NoSuchBlock'))


class NoHeadsBlock(BaseFusionBlock):
    """A text-conditioned plugin without attention: it declares no num_heads."""

    requires_text = True

    def __init__(self, in_channels, token_dim, hidden=3):
        super().__init__(in_channels, token_dim)
        self.proj = torch.nn.Linear(token_dim, in_channels)

    def fuse(self, y, i, text_feats, text_mask):
        return y + i * self.proj(text_feats.mean(1))[..., None, None]


class AnyArgsBlock(BaseFusionBlock):
    """Takes whatever the fuser gives."""

    def __init__(self, **kwargs):
        super().__init__(kwargs['in_channels'])
        self.given = kwargs

    def fuse(self, y, i, text_feats, text_mask):
        return y - i


class NotABlock(torch.nn.Module):

    def __init__(self, in_channels):
        super().__init__()


def test_fills_in_only_the_arguments_a_block_declares():
    fuser = _tiny(fusion_block=dict(type=NoHeadsBlock, hidden=5))
    assert fuser.requires_text and fuser.net.lang_l3.token_dim == 16
    assert (fuser.net.lang_l3.in_channels, fuser.net.lang_l4.in_channels) == (16, 32)
    vis, ir, feats, mask = _inputs()
    assert fuser(vis, ir, feats, mask).shape == vis.shape
    fuser = _tiny(fusion_block=dict(type=AnyArgsBlock, num_heads=8))
    assert not fuser.requires_text and fuser.net.txt is None
    assert fuser.net.lang_l4.given == dict(in_channels=32, token_dim=16, num_heads=8)
    assert _tiny(fusion_block=dict(type=AnyArgsBlock)).net.lang_l3.given['num_heads'] == 2
    with pytest.raises(ValueError, match='fusion_block sets in_channels=7'):
        _tiny(fusion_block=dict(type='ConcatConvFusion', in_channels=7))
    with pytest.raises(TypeError, match='NotABlock must say .* requires_text'):
        _tiny(fusion_block=dict(type=NotABlock))


def test_norm_cfg_reaches_every_norm_and_keeps_the_parameter_names():
    """A SyncBN config (multi-GPU) switches every BN of the UNet and of the fusion blocks
    that take a norm_cfg; the state-dict keys stay the published ones."""

    def norms(fuser, kind):
        found = [m for m in fuser.modules() if isinstance(m, _BatchNorm)]
        assert all(isinstance(m, kind) for m in found)
        return len(found)

    block = dict(type='ConcatConvFusion')
    bn, sync = _tiny(fusion_block=block), _tiny(fusion_block=block,
                                                 norm_cfg=dict(type='SyncBN'))
    # 8 encoder and 3 decoder units with two norms each, one in each of the 2 fusion blocks
    assert norms(sync, torch.nn.SyncBatchNorm) == norms(bn, torch.nn.BatchNorm2d) == 24
    assert list(sync.state_dict()) == list(bn.state_dict())
    own = _tiny(fusion_block=dict(block, norm_cfg=dict(type='BN')),
                norm_cfg=dict(type='SyncBN'))
    assert isinstance(own.net.lang_l3.conv[1], torch.nn.BatchNorm2d)  # its config wins
    assert isinstance(own.net.y_inc.block[1], torch.nn.SyncBatchNorm)


def test_gray_ir_with_one_channel_statistics():
    fuser = _tiny(ir_mean=(0.5, ), ir_std=(0.25, )).eval()
    vis, ir3, feats, mask = _inputs()
    gray = rgb_to_luma(ir3 * torch.tensor(STD)[:, None, None] +
                       torch.tensor(MEAN)[:, None, None])
    ir1 = (gray - 0.5) / 0.25
    reference = _tiny().eval()
    reference.load_state_dict(fuser.state_dict() | {'mean_ir': reference.mean_ir,
                                                    'std_ir': reference.std_ir})
    with torch.no_grad():
        torch.testing.assert_close(fuser(vis, ir1, feats, mask),
                                   reference(vis, ir3, feats, mask), atol=1e-5, rtol=0)


def test_bad_inputs_are_named():
    fuser = _tiny()
    vis, ir, feats, mask = _inputs()
    with pytest.raises(ValueError, match=r'ir must be \(B, 3, H, W\)'):
        fuser(vis, ir[:, :1], feats, mask)
    with pytest.raises(ValueError, match='pass text_feats'):
        fuser(vis, ir)
    with pytest.raises(ValueError, match=r'text_feats must be \(B, T, 24\)'):
        fuser(vis, ir, feats[..., :8], mask)
    with pytest.raises(ValueError, match='vis_mean must have 3 values'):
        UNetFuser(vis_mean=(0.5, ))


def test_fusion_loss_backward_reaches_every_fuser_parameter():
    fuser = _tiny().train()
    vis, ir, feats, mask = _inputs()
    fused = fuser(vis, ir, feats, mask)
    lumas = fusion_luma(fused, vis, ir)
    terms = [SSIMLoss('vis', loss_weight=1.5), LumaMSELoss('vis', loss_weight=1.5),
             LumaMSELoss('ir', loss_weight=6.0), SobelL1Loss('ir', loss_weight=3.0),
             JointGradientLoss(loss_weight=3.0)]
    sum(term(*lumas) for term in terms).backward()
    for name, param in fuser.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_channels_last_gives_the_published_layout_numbers():
    """The channels-last speed-up: feature maps in that layout, outputs and gradients as the
    contiguous (published) layout's, after loading the same weights."""
    torch.manual_seed(0)
    fast, published = _tiny(), _tiny(channels_last=False)
    published.load_state_dict(fast.state_dict())
    conv = fast.net.y_inc.block[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert published.net.y_inc.block[0].weight.is_contiguous()
    maps = []
    conv.register_forward_hook(lambda module, args, out: maps.append(out))
    vis, ir, feats, mask = _inputs(h=36, w=44)
    outs, grads = [], []
    for fuser in (fast, published):
        out = fuser(vis, ir, feats, mask)
        out.square().mean().backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in fuser.named_parameters()})
    assert maps[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)
    for name, grad in grads[1].items():
        torch.testing.assert_close(grads[0][name], grad, rtol=1e-4, atol=1e-6, msg=name)
