"""LAVT's language-aware blocks: the pixel-word attention module (PWAM) and the language gate.

LAVT (Yang et al., CVPR 2022) inserts both at the end of every Swin stage: PWAM turns the word
features into a per-pixel multi-modal feature ``F``, the gate decides how much of ``F`` flows
back into the visual stream (``X <- X + gate(F) * F``). The layers here keep the published
layout (1x1 ``Conv1d`` on channel-first sequences, parameter-free ``InstanceNorm1d``), so a
converted official checkpoint reproduces the published numbers.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrisfusion.registry import MODELS

from ..utils.precision import float32_forward

# Added to the similarity of padded words before the softmax (the published constant).
_MASK_VALUE = 1e4


def check_word_features(owner: str, text_feats: Tensor, text_mask: Tensor) -> None:
    """Raise a clear error unless the words come as a language-aware backbone takes them.

    Args:
        owner (str): The backbone's name, for the message.
        text_feats (Tensor): Word features, expected (B, T, D).
        text_mask (Tensor): Word mask, expected (B, T).
    """
    if text_feats.dim() != 3 or text_mask.shape != text_feats.shape[:2]:
        raise ValueError(f'{owner} expects text_feats (B, T, D) and text_mask (B, T); got '
                         f'{tuple(text_feats.shape)} and {tuple(text_mask.shape)}')


def coordinate_channels(x: Tensor, hw_shape: Optional[Tuple[int, int]]) -> Tensor:
    """The normalised x and y of every pixel of a row-major map, for :class:`PWAM`.

    Args:
        x (Tensor): Channel-first features (B, C, HW), for the batch, dtype and device.
        hw_shape (tuple[int, int] | None): ``(H, W)`` with ``H * W == HW``.

    Returns:
        Tensor: (B, 2, HW): x then y, each from -1 (left/top) to 1 (right/bottom).
    """
    if hw_shape is None or hw_shape[0] * hw_shape[1] != x.shape[-1]:
        raise ValueError(f'PWAM(with_coords=True) needs the hw_shape of its {x.shape[-1]} '
                         f'pixels, got {hw_shape}')
    height, width = hw_shape
    ys = torch.linspace(-1, 1, height, dtype=x.dtype, device=x.device)
    xs = torch.linspace(-1, 1, width, dtype=x.dtype, device=x.device)
    grid = torch.stack([xs.expand(height, width), ys[:, None].expand(height, width)])
    return grid.reshape(1, 2, -1).expand(x.shape[0], -1, -1)


@MODELS.register_module()
class PWAM(nn.Module):
    """Pixel-word attention module of LAVT.

    With ``X`` the visual sequence (B, HW, C) and ``L`` the word features (B, D, T):

    - ``vis = Dropout(GELU(Conv1d(X)))``;
    - ``Q = IN(Conv1d(X))``, ``K = Conv1d(L) * m``, ``V = Conv1d(L) * m``, split into
      ``num_heads`` heads; ``A = softmax_words(Q K / sqrt(C) + (1e4 m - 1e4))``;
      ``lang = IN(Conv1d(A V))``;
    - ``F = Dropout(GELU(Conv1d(vis * lang)))``.

    The attention scale uses the full channel count ``C`` whatever the number of heads, as
    published.

    ``with_coords=True`` (not in LAVT, off by default) appends two channels, the pixel's
    normalised x and y in [-1, 1], to ``X`` before the visual and query projections, as many
    referring segmentation models do: Swin's relative position biases and the unpadded patch
    embedding leave the features almost blind to absolute position (see
    ``tools/analysis_tools/probe_position.py``), which words like "leftmost" or "the second
    from the right" need. The forward then needs the map's ``hw_shape``.

    Args:
        embed_dims (int): Channels ``C`` of the visual features (also of keys and values).
        text_dims (int): Channels ``D`` of the word features. Defaults to 768.
        num_heads (int): Attention heads; must divide ``embed_dims``. Defaults to 1.
        dropout (float): Dropout after the visual and the multi-modal projections.
            Defaults to 0.0.
        with_coords (bool): Append normalised x/y coordinate channels to the visual
            features before the projections. Defaults to False (as published).
    """

    def __init__(self, embed_dims: int, text_dims: int = 768, num_heads: int = 1,
                 dropout: float = 0.0, with_coords: bool = False) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'PWAM: num_heads={num_heads} must divide '
                             f'embed_dims={embed_dims}')
        self.embed_dims = embed_dims
        self.text_dims = text_dims
        self.num_heads = num_heads
        self.with_coords = with_coords
        in_dims = embed_dims + 2 if with_coords else embed_dims
        self.vis_proj = nn.Conv1d(in_dims, embed_dims, 1)
        self.query_proj = nn.Conv1d(in_dims, embed_dims, 1)
        self.key_proj = nn.Conv1d(text_dims, embed_dims, 1)
        self.value_proj = nn.Conv1d(text_dims, embed_dims, 1)
        self.out_proj = nn.Conv1d(embed_dims, embed_dims, 1)
        self.mm_proj = nn.Conv1d(embed_dims, embed_dims, 1)
        # Parameter-free, per-sample normalisation over the pixels of each channel.
        self.query_norm = nn.InstanceNorm1d(embed_dims)
        self.out_norm = nn.InstanceNorm1d(embed_dims)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def attend(self, x: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        """Gather word features for every pixel (the ``lang`` term).

        Args:
            x (Tensor): Visual features, channel first (B, C, HW) (with the two coordinate
                channels after them when ``with_coords``).
            text (Tensor): Word features, channel first (B, D, T).
            text_mask (Tensor): 1 for words, 0 for padding, (B, 1, T) float.

        Returns:
            Tensor: Language features per pixel, channel first (B, C, HW).
        """
        batch, _, num_pixels = x.shape
        channels = self.embed_dims
        head_dims = channels // self.num_heads
        query = self.query_norm(self.query_proj(x))
        key = self.key_proj(text) * text_mask
        value = self.value_proj(text) * text_mask
        num_words = key.shape[-1]
        # (B, heads, HW, C/heads) @ (B, heads, C/heads, T)
        query = query.transpose(1, 2).reshape(batch, num_pixels, self.num_heads,
                                              head_dims).transpose(1, 2)
        key = key.reshape(batch, self.num_heads, head_dims, num_words)
        value = value.reshape(batch, self.num_heads, head_dims, num_words)
        sim = torch.matmul(query, key) * channels**-0.5
        sim = sim + (_MASK_VALUE * text_mask.unsqueeze(1) - _MASK_VALUE)
        attn = F.softmax(sim, dim=-1)
        out = torch.matmul(attn, value.transpose(2, 3))  # (B, heads, HW, C/heads)
        out = out.transpose(1, 2).reshape(batch, num_pixels, channels).transpose(1, 2)
        return self.out_norm(self.out_proj(out))

    @float32_forward
    def forward(self, x: Tensor, text: Tensor, text_mask: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tensor:
        """Compute the multi-modal feature ``F``.

        Always in float32, autocast or not: the instance norms divide by the spatial spread of
        each channel, which is often tiny next to its mean, so they amplify rounding errors
        (about 1e4 times, tools/analysis_tools/check_reference.py); in bfloat16 the tiny
        RIS-FUSION's backbone maps moved 5x further from float32 than with this module in
        float32. It costs little: about 2% of the Swin-B forward's operations.

        Args:
            x (Tensor): Visual features (B, HW, C).
            text (Tensor): Word features, channel first (B, D, T).
            text_mask (Tensor): 1 for words, 0 for padding, (B, T) of any numeric dtype.
            hw_shape (tuple[int, int], optional): ``(H, W)`` of the pixel map, row-major;
                needed with ``with_coords``. Defaults to None.

        Returns:
            Tensor: ``F`` (B, HW, C).
        """
        if x.dim() != 3 or x.shape[-1] != self.embed_dims:
            raise ValueError(f'PWAM expects visual features (B, HW, {self.embed_dims}), '
                             f'got {tuple(x.shape)}')
        if text.dim() != 3 or text.shape[1] != self.text_dims:
            raise ValueError(f'PWAM expects channel-first word features '
                             f'(B, {self.text_dims}, T), got {tuple(text.shape)}')
        if x.shape[1] < 2:
            raise ValueError('PWAM normalises over pixels and needs at least 2, got 1: the '
                             'image is too small for this backbone (the last Swin stage is '
                             '1/32 of the input size)')
        mask = text_mask.to(x.dtype).unsqueeze(1)
        x = x.transpose(1, 2)
        if self.with_coords:
            x = torch.cat([x, coordinate_channels(x, hw_shape)], dim=1)
        vis = self.dropout(self.act(self.vis_proj(x)))
        lang = self.attend(x, text, mask)
        mm = self.dropout(self.act(self.mm_proj(vis * lang)))
        return mm.transpose(1, 2)


@MODELS.register_module()
class LanguageGate(nn.Module):
    """LAVT's language gate ``S = tanh(W2 ReLU(W1 F))``, bias-free, element-wise.

    The caller adds ``S * F`` to the visual stream; the tanh lets the gate also subtract.

    Args:
        embed_dims (int): Channels of ``F``.
    """

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, embed_dims, bias=False)
        self.fc2 = nn.Linear(embed_dims, embed_dims, bias=False)

    def forward(self, feat: Tensor) -> Tensor:
        """Compute the gate.

        Args:
            feat (Tensor): The multi-modal feature ``F`` (B, HW, C).

        Returns:
            Tensor: The gate ``S`` in (-1, 1), same shape as ``feat``.
        """
        return torch.tanh(self.fc2(F.relu(self.fc1(feat))))


def running_max(x: Tensor) -> Tensor:
    """``x.cummax(1).values`` for (B, W, C), as a masked maximum over a (B, W, W, C) view.

    The same numbers; ONNX has no cumulative maximum (``torch.onnx`` cannot export
    ``cummax``) and these maps are narrow (W is at most the image width / 4).
    """
    width = x.shape[1]
    upto = torch.ones(width, width, dtype=torch.bool, device=x.device).tril()
    return x[:, None].masked_fill(~upto[None, :, :, None], float('-inf')).amax(2)


@MODELS.register_module()
class HorizontalContext(nn.Module):
    """What lies to the left and to the right of every pixel, over the whole image height.

    For a map ``F`` (B, H, W, C), each column is summarised by its maximum and its mean over
    the rows; then, for every column, four summaries of the columns strictly to its left and
    strictly to its right: their maximum (at least 0, the value of an empty side) and their
    sum divided by the width ``W`` (how much there is on that side). These are projected and
    added to every pixel of the column: ``F + Linear([max_l, max_r, sum_l / W, sum_r / W])``.
    A directional pooling like CornerNet's corner pooling, over half-planes: once the
    pixel-word attention has marked the pixels of the referred kind, a pixel can tell
    whether such pixels lie to its left or right ("the dog on the left", "the second bike
    from the right"), which Swin's window attention would have to learn to route over the
    whole image. With ``text_dims``, the sentence (the mean of its word features) scales the
    four summaries channel by channel (``2 * sigmoid(Linear(sentence))``, 1 at a zero
    input), so an expression can pick the side it is about. Not in LAVT.

    Args:
        embed_dims (int): Channels ``C``.
        text_dims (int): Channels of the word features for the sentence gate.
            Defaults to 0 (no gate).
    """

    def __init__(self, embed_dims: int, text_dims: int = 0) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.proj = nn.Linear(4 * embed_dims, embed_dims)
        self.text_gate = nn.Linear(text_dims, 4 * embed_dims) if text_dims else None

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                sentence: Optional[Tensor] = None) -> Tensor:
        """Add the context of both sides.

        Args:
            x (Tensor): Features (B, HW, C), row-major.
            hw_shape (tuple[int, int]): ``(H, W)``.
            sentence (Tensor, optional): (B, text_dims), the mean word feature of each
                expression; needed with the gate, ignored without.

        Returns:
            Tensor: (B, HW, C).
        """
        batch, num_pixels, channels = x.shape
        height, width = hw_shape
        if height * width != num_pixels or channels != self.embed_dims:
            raise ValueError(f'HorizontalContext({self.embed_dims}) expects (B, {height} * '
                             f'{width}, {self.embed_dims}) features, got {tuple(x.shape)}')
        if self.text_gate is not None and sentence is None:
            raise ValueError('HorizontalContext with a sentence gate needs the sentence')
        rows = x.view(batch, height, width, channels)
        columns = torch.cat([rows.amax(1), rows.sum(1) / height], dim=-1)
        # Shifted by one column, zero-padded: the summaries leave the column itself out.
        before_max, before_mean = F.pad(columns, (0, 0, 1, 0))[:, :-1].chunk(2, dim=-1)
        after_max, after_mean = F.pad(columns, (0, 0, 0, 1))[:, 1:].flip(1).chunk(2, dim=-1)
        context = torch.cat([
            running_max(before_max),
            running_max(after_max).flip(1),
            before_mean.cumsum(1) / width,
            after_mean.cumsum(1).flip(1) / width,
        ], dim=-1)
        if self.text_gate is not None:
            context = context * 2 * torch.sigmoid(self.text_gate(sentence))[:, None]
        out = rows + self.proj(context)[:, None]
        return out.view(batch, num_pixels, channels)
