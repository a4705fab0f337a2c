import pytest
import torch

from mmrisfusion.models.layers import (
    AverageFusion,
    ConcatConvFusion,
    LangGatedFusion,
    TextFreeGateFusion,
)
from mmrisfusion.registry import MODELS

B, C, T, D = 2, 4, 6, 32


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(B, C, 5, 7, generator=g)
    i = torch.randn(B, C, 5, 7, generator=g)
    tokens = torch.randn(B, T, D, generator=g)
    mask = torch.tensor([[1] * 4 + [0] * 2, [1] * 6])
    return y, i, tokens, mask


def _lang_block():
    return LangGatedFusion(C, token_dim=D, embed_dims=16, num_heads=2, gate_channels=8)


def test_lang_gated_fusion_formula():
    torch.manual_seed(0)
    block = _lang_block()
    y, i, tokens, mask = _inputs()
    out = block(y, i, tokens, mask)
    ctx = block.pwam(torch.cat([y, i], 1), tokens, mask)
    alpha = torch.sigmoid(block.fuse_gate[2](block.fuse_gate[1](block.fuse_gate[0](ctx))))
    film = block.film(ctx)
    expected = (1 + 0.1 * film[:, :1]) * ((1 - alpha) * y + alpha * i) + film[:, 1:]
    torch.testing.assert_close(out, expected)
    assert alpha.shape == (B, 1, 5, 7)


def test_lang_gated_fusion_depends_on_text_and_trains():
    block = _lang_block()
    y, i, tokens, mask = _inputs()
    out = block(y, i, tokens, mask)
    assert not torch.allclose(out, block(y, i, tokens.flip(0), mask))
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_lang_gated_fusion_needs_text():
    y, i, _, _ = _inputs()
    with pytest.raises(ValueError, match='needs text_feats'):
        _lang_block()(y, i, None, None)


@pytest.mark.parametrize('cfg', [
    dict(type='AverageFusion', in_channels=C),
    dict(type='ConcatConvFusion', in_channels=C),
    dict(type='TextFreeGateFusion', in_channels=C, gate_channels=8),
])
def test_text_free_blocks(cfg):
    block = MODELS.build(cfg)
    assert block.requires_text is False
    y, i, tokens, mask = _inputs()
    out = block(y, i)
    assert out.shape == y.shape
    torch.testing.assert_close(out, block(y, i, tokens, mask))
    if isinstance(block, AverageFusion):
        torch.testing.assert_close(out, 0.5 * (y + i))
    if isinstance(block, TextFreeGateFusion):  # a convex combination of the inputs
        assert ((out >= torch.minimum(y, i) - 1e-6) & (out <= torch.maximum(y, i) + 1e-6)).all()
    if isinstance(block, ConcatConvFusion):
        out.mean().backward()
        assert block.conv[0].weight.grad is not None


def test_registered_and_signature_checked():
    assert MODELS.get('LangGatedFusion') is LangGatedFusion
    y, i, tokens, mask = _inputs()
    with pytest.raises(ValueError, match='in_channels=8'):
        ConcatConvFusion(8)(y, i)
    with pytest.raises(ValueError, match='of one shape'):
        AverageFusion()(y, i[:, :2])
