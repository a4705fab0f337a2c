import pytest
import torch

from mmrisfusion.models.layers import PixelWordAttention


def _inputs(seed=0, b=2, c=6, t=5, d=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, 3, 4, generator=g)
    tokens = torch.randn(b, t, d, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    return x, tokens, mask


def test_matches_multihead_attention_by_hand():
    torch.manual_seed(0)
    attn = PixelWordAttention(6, token_dim=16, embed_dims=8, num_heads=2).eval()
    x, tokens, mask = _inputs()
    out = attn(x, tokens, mask)
    assert out.shape == (2, 8, 3, 4)
    # the same attention written per sample and per head, padded words dropped
    q = torch.einsum('oc,bchw->bhwo', attn.q_proj.weight[:, :, 0, 0], x) + attn.q_proj.bias
    k, v = attn.k_proj(tokens), attn.v_proj(tokens)
    for b in range(2):
        n = int(mask[b].sum())
        heads = []
        for h in range(2):
            sl = slice(4 * h, 4 * h + 4)
            w = (q[b, ..., sl].reshape(12, 4) @ k[b, :n, sl].T / 2.0).softmax(-1)
            heads.append(w @ v[b, :n, sl])
        ctx = torch.cat(heads, -1).T.reshape(8, 3, 4)
        expected = attn.out_proj(ctx[None])[0]
        torch.testing.assert_close(out[b], expected, atol=1e-5, rtol=1e-5)


def test_padded_words_have_no_influence():
    attn = PixelWordAttention(6, token_dim=16, embed_dims=8, num_heads=2)
    x, tokens, mask = _inputs()
    changed = tokens.clone()
    changed[0, 3:] = 100.0
    torch.testing.assert_close(attn(x, tokens, mask), attn(x, changed, mask))
    changed[0, 0] = 100.0
    assert not torch.allclose(attn(x, tokens, mask), attn(x, changed, mask))


def test_all_padded_sample_is_finite():
    attn = PixelWordAttention(6, token_dim=16, embed_dims=8, num_heads=2)
    x, tokens, _ = _inputs()
    assert torch.isfinite(attn(x, tokens, torch.zeros(2, 5, dtype=torch.long))).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match='must divide'):
        PixelWordAttention(6, embed_dims=10, num_heads=4)
    attn = PixelWordAttention(6, token_dim=16, embed_dims=8, num_heads=2)
    x, tokens, mask = _inputs()
    with pytest.raises(ValueError, match=r'tokens must be \(B=2, T, 16\)'):
        attn(x, tokens[..., :8], mask)
    with pytest.raises(ValueError, match='token_mask must be'):
        attn(x, tokens, mask[:, :3])
