"""BaseFusionBlock: the contract checks every fusion block gets, and the blocks that keep it."""
import pytest
import torch

from mmrisfusion.models.layers import (
    AverageFusion,
    BaseFusionBlock,
    ConcatConvFusion,
    LangGatedFusion,
    TextFreeGateFusion,
)

B, C, T, D = 2, 4, 5, 8


class Sum(BaseFusionBlock):
    """A text-conditioned block that adds the mean word to both maps."""

    requires_text = True

    def fuse(self, y, i, text_feats, text_mask):
        return y + i + text_feats.mean((1, 2)).view(-1, 1, 1, 1)


class Crop(BaseFusionBlock):
    """Breaks the contract: returns a smaller map."""

    def fuse(self, y, i, text_feats, text_mask):
        return y[..., 1:]


def _maps():
    return torch.rand(B, C, 3, 4), torch.rand(B, C, 3, 4)


def test_the_shipped_blocks_keep_the_contract():
    for cls in (AverageFusion, ConcatConvFusion, LangGatedFusion, TextFreeGateFusion):
        assert issubclass(cls, BaseFusionBlock) and isinstance(cls.requires_text, bool)
    assert LangGatedFusion.requires_text and not AverageFusion.requires_text


def test_forward_checks_then_fuses():
    y, i = _maps()
    text, mask = torch.rand(B, T, D), torch.ones(B, T)
    block = Sum(in_channels=C, token_dim=D)
    torch.testing.assert_close(block(y, i, text, mask),
                               y + i + text.mean((1, 2)).view(-1, 1, 1, 1))
    with pytest.raises(ValueError, match='Sum is text-conditioned .* needs text_feats'):
        block(y, i)
    with pytest.raises(ValueError, match=r'Sum: text_feats must be \(B=2, T, 8\)'):
        block(y, i, text[..., :3], mask)
    with pytest.raises(ValueError, match=r'Sum: text_feats must be \(B=2, T, 8\)'):
        block(y, i, text[:1], mask)
    with pytest.raises(ValueError, match=r'Sum: text_mask must be \(B, T\) = \(2, 5\)'):
        block(y, i, text, mask[:, :2])
    with pytest.raises(ValueError, match='Sum was built for in_channels=4'):
        block(y[:, :2], i[:, :2], text, mask)
    with pytest.raises(ValueError, match='Sum: y and i must be .* of one shape'):
        block(y, i[..., :2], text, mask)
    # without token_dim any width passes; a text-free block ignores the text entirely
    assert Sum()(y, i, text[..., :3], mask).shape == y.shape
    assert AverageFusion()(y, i, text[:1], None).shape == y.shape


def test_output_shape_is_checked_and_fuse_is_required():
    y, i = _maps()
    with pytest.raises(ValueError, match=r'Crop\.fuse must return a map shaped like y'):
        Crop()(y, i)
    with pytest.raises(TypeError, match='abstract'):
        BaseFusionBlock()
