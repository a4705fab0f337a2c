"""Pixel-word cross-attention of RIS-FUSION's text-conditioned fuser.

Every pixel of a visual feature map attends over the words of the referring expression;
the result is a per-pixel language context map that :class:`LangGatedFusion` turns into a
fusion gate and a FiLM modulation. Unlike LAVT's PWAM (``lavt_fusion.py``) this is standard
multi-head attention: the scale is the per-head width, and there is no normalisation.
"""
import torch
import torch.nn as nn
from torch import Tensor

from mmrisfusion.registry import MODELS


@MODELS.register_module()
class PixelWordAttention(nn.Module):
    """Multi-head attention from pixels (queries) to words (keys, values).

    ``Q = Conv1x1(x)`` per pixel, ``K = Linear(t)``, ``V = Linear(t)`` per word, split into
    ``num_heads`` heads of ``embed_dims / num_heads`` channels;
    ``A = softmax_words(Q K^T * (embed_dims / num_heads)^-0.5)`` with padded words masked out;
    ``out = Conv1x1(A V)``. Parameter names follow the published ``pwam`` module.

    Args:
        in_channels (int): Channels of the visual feature map (the query input).
        token_dim (int): Channels of the word tokens (key and value input). Defaults to 256.
        embed_dims (int): Width of queries, keys, values and of the output context map.
            Defaults to 256.
        num_heads (int): Attention heads; must divide ``embed_dims``. Defaults to 4.
    """

    def __init__(self, in_channels: int, token_dim: int = 256, embed_dims: int = 256,
                 num_heads: int = 4) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'PixelWordAttention: num_heads={num_heads} must divide '
                             f'embed_dims={embed_dims}')
        self.in_channels = in_channels
        self.token_dim = token_dim
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.q_proj = nn.Conv2d(in_channels, embed_dims, 1)
        self.k_proj = nn.Linear(token_dim, embed_dims)
        self.v_proj = nn.Linear(token_dim, embed_dims)
        self.out_proj = nn.Conv2d(embed_dims, embed_dims, 1)

    def forward(self, x: Tensor, tokens: Tensor, token_mask: Tensor) -> Tensor:
        """Attend from every pixel of ``x`` over the valid words.

        Args:
            x (Tensor): Visual features ``(B, in_channels, h, w)``.
            tokens (Tensor): Word tokens ``(B, T, token_dim)``.
            token_mask (Tensor): ``(B, T)``, nonzero for words, 0 for padding. A sample
                whose words are all padding attends uniformly instead of producing NaN.

        Returns:
            Tensor: The language context map ``(B, embed_dims, h, w)``.
        """
        b, _, h, w = x.shape
        if tokens.dim() != 3 or tokens.shape[0] != b or tokens.shape[2] != self.token_dim:
            raise ValueError(f'PixelWordAttention: tokens must be (B={b}, T, '
                             f'{self.token_dim}), got {tuple(tokens.shape)}')
        if token_mask.shape != tokens.shape[:2]:
            raise ValueError(f'PixelWordAttention: token_mask must be {tuple(tokens.shape[:2])}'
                             f' like the tokens, got {tuple(token_mask.shape)}')
        heads, head_dims = self.num_heads, self.embed_dims // self.num_heads
        # (B, heads, hw, head_dims) queries; (B, heads, T, head_dims) keys and values.
        q = self.q_proj(x).reshape(b, heads, head_dims, h * w).transpose(2, 3)
        k = self.k_proj(tokens).reshape(b, -1, heads, head_dims).transpose(1, 2)
        v = self.v_proj(tokens).reshape(b, -1, heads, head_dims).transpose(1, 2)
        attn = (q @ k.transpose(2, 3)) * self.scale
        padded = (token_mask == 0)[:, None, None, :]
        attn = attn.masked_fill(padded, torch.finfo(attn.dtype).min).softmax(dim=-1)
        ctx = (attn @ v).transpose(2, 3).reshape(b, self.embed_dims, h, w)
        return self.out_proj(ctx)
