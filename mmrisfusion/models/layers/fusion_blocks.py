"""Blocks that fuse the VIS-luma and IR feature maps of one UNet level into one map.

All blocks keep the contract of :class:`BaseFusionBlock` (``forward(y, i, text_feats,
text_mask) -> fused``, ``requires_text``, the arguments the fuser fills in), so a fuser can
swap them from the config.

- :class:`LangGatedFusion`: RIS-FUSION's text-conditioned gate with FiLM (the published block).
- :class:`AverageFusion`: ``0.5 (y + i)``, what RIS-FUSION uses at the non-injected levels.
- :class:`ConcatConvFusion` and :class:`TextFreeGateFusion`: learned, text-free ablations.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.typing_utils import OptConfigType

from .base_fusion_block import BaseFusionBlock
from .pixel_word_attention import PixelWordAttention


@MODELS.register_module()
class LangGatedFusion(BaseFusionBlock):
    """RIS-FUSION's language-gated fusion of two feature maps.

    The referring expression decides, per pixel, how much of each modality to keep:

    - ``ctx = PixelWordAttention(concat[y, i], tokens)``, ``(B, embed_dims, h, w)``;
    - gate ``alpha = sigmoid(Conv1x1(ReLU(Conv1x1(ctx))))``, one channel;
    - FiLM ``[gamma, beta] = Conv1x1(ReLU(Conv1x1(ctx)))``, one channel each, broadcast over
      the feature channels;
    - ``out = (1 + film_scale * gamma) * ((1 - alpha) y + alpha i) + beta``.

    Parameter names (``pwam``, ``fuse_gate``, ``film``) are the published ones.

    Args:
        in_channels (int): Channels of each input map.
        token_dim (int): Channels of the word tokens. Defaults to 256.
        embed_dims (int): Width of the attention and of the context map. Defaults to 256.
        num_heads (int): Attention heads. Defaults to 4.
        gate_channels (int): Hidden width of the gate and FiLM branches. Defaults to 128.
        film_scale (float): Factor on ``gamma``, keeping the modulation near identity at
            initialisation. Defaults to 0.1.
    """

    requires_text = True

    def __init__(self, in_channels: int, token_dim: int = 256, embed_dims: int = 256,
                 num_heads: int = 4, gate_channels: int = 128, film_scale: float = 0.1) -> None:
        super().__init__(in_channels, token_dim)
        self.film_scale = film_scale
        self.pwam = PixelWordAttention(2 * in_channels, token_dim=token_dim,
                                       embed_dims=embed_dims, num_heads=num_heads)
        self.fuse_gate = nn.Sequential(
            nn.Conv2d(embed_dims, gate_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(gate_channels, 1, 1), nn.Sigmoid())
        self.film = nn.Sequential(
            nn.Conv2d(embed_dims, gate_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(gate_channels, 2, 1))

    def fuse(self, y: Tensor, i: Tensor, text_feats: Tensor, text_mask: Tensor) -> Tensor:
        """Fuse ``y`` and ``i`` under the guidance of the words (see :meth:`forward`)."""
        ctx = self.pwam(torch.cat([y, i], dim=1), text_feats, text_mask)
        alpha = self.fuse_gate(ctx)
        gamma, beta = self.film(ctx).split(1, dim=1)
        return (1 + self.film_scale * gamma) * ((1 - alpha) * y + alpha * i) + beta


@MODELS.register_module()
class AverageFusion(BaseFusionBlock):
    """Parameter-free ``0.5 (y + i)``.

    Args:
        in_channels (int, optional): Expected channels of each input, checked when given.
            Defaults to None.
    """

    requires_text = False

    def __init__(self, in_channels: Optional[int] = None) -> None:
        super().__init__(in_channels)

    def fuse(self, y: Tensor, i: Tensor, text_feats: Optional[Tensor],
             text_mask: Optional[Tensor]) -> Tensor:
        """Average the two maps (the text is ignored)."""
        return 0.5 * (y + i)


@MODELS.register_module()
class ConcatConvFusion(BaseFusionBlock):
    """Text-free learned fusion: ``ReLU(BN(Conv3x3(concat[y, i])))`` back to ``C`` channels.

    Args:
        in_channels (int): Channels of each input map.
        norm_cfg (dict, optional): The norm after the convolution; a fuser fills in its own.
            Defaults to None, meaning ``dict(type='BN')``.
    """

    requires_text = False

    def __init__(self, in_channels: int, norm_cfg: OptConfigType = None) -> None:
        super().__init__(in_channels)
        self.conv = nn.Sequential(
            nn.Conv2d(2 * in_channels, in_channels, 3, padding=1, bias=False),
            build_norm_layer(norm_cfg or dict(type='BN'), in_channels)[1],
            nn.ReLU(inplace=True))

    def fuse(self, y: Tensor, i: Tensor, text_feats: Optional[Tensor],
             text_mask: Optional[Tensor]) -> Tensor:
        """Fuse by a convolution over the concatenated maps (the text is ignored)."""
        return self.conv(torch.cat([y, i], dim=1))


@MODELS.register_module()
class TextFreeGateFusion(BaseFusionBlock):
    """The gate of :class:`LangGatedFusion` computed from the images instead of the words.

    ``alpha = sigmoid(Conv1x1(ReLU(Conv1x1(concat[y, i]))))``, ``out = (1 - alpha) y +
    alpha i``: isolates what the language adds to the gate in ablations.

    Args:
        in_channels (int): Channels of each input map.
        gate_channels (int): Hidden width of the gate. Defaults to 128.
    """

    requires_text = False

    def __init__(self, in_channels: int, gate_channels: int = 128) -> None:
        super().__init__(in_channels)
        self.fuse_gate = nn.Sequential(
            nn.Conv2d(2 * in_channels, gate_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(gate_channels, 1, 1), nn.Sigmoid())

    def fuse(self, y: Tensor, i: Tensor, text_feats: Optional[Tensor],
             text_mask: Optional[Tensor]) -> Tensor:
        """Fuse by a per-pixel gate predicted from both maps (the text is ignored)."""
        alpha = self.fuse_gate(torch.cat([y, i], dim=1))
        return (1 - alpha) * y + alpha * i
