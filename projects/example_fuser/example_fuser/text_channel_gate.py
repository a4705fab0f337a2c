"""A text-conditioned channel gate (squeeze-and-excitation from the sentence)."""
import torch
import torch.nn as nn
from torch import Tensor

from mmrisfusion.models.layers import BaseFusionBlock
from mmrisfusion.registry import MODELS


@MODELS.register_module()
class TextChannelGateFusion(BaseFusionBlock):
    """Per-channel choice between VIS and IR, made from the whole sentence.

    ``LangGatedFusion`` decides per pixel through word-to-pixel attention. Many expressions
    rather say which modality matters for the whole scene ("the warm person in the dark");
    a squeeze-and-excitation gate captures that per channel, without attention, for
    ``O(B C)`` extra work:

    - ``s = masked_mean(text_feats)``, the sentence ``(B, token_dim)``;
    - ``z = concat[s, avgpool(y), avgpool(i)]``: the sentence and what both maps hold;
    - ``alpha = sigmoid(excite(ReLU(squeeze(z))))``, one weight per channel ``(B, C, 1, 1)``;
    - ``out = (1 - alpha) y + alpha i``.

    ``excite`` starts at zero, so the block starts as ``0.5 (y + i)``, the
    ``AverageFusion`` the fuser uses at its other levels, and learns away from it.

    It keeps the contract of ``mmrisfusion.models.layers.BaseFusionBlock``: the fuser fills
    in the ``in_channels`` and ``token_dim`` its constructor declares (it has no attention, so
    it declares no ``num_heads`` and gets none); ``requires_text`` makes the fuser pass the
    words; the base class checks the shapes and calls :meth:`fuse`.

    Args:
        in_channels (int): Channels of each input map.
        token_dim (int): Channels of the word tokens. Defaults to 256.
        hidden_channels (int): Width of the squeeze layer. Defaults to 64.
    """

    requires_text = True

    def __init__(self, in_channels: int, token_dim: int = 256,
                 hidden_channels: int = 64) -> None:
        super().__init__(in_channels, token_dim)
        self.squeeze = nn.Linear(token_dim + 2 * in_channels, hidden_channels)
        self.excite = nn.Linear(hidden_channels, in_channels)
        nn.init.zeros_(self.excite.weight)
        nn.init.zeros_(self.excite.bias)

    def fuse(self, y: Tensor, i: Tensor, text_feats: Tensor, text_mask: Tensor) -> Tensor:
        """Fuse ``y`` and ``i`` with one sentence-driven weight per channel.

        Args:
            y (Tensor): VIS-luma features ``(B, C, h, w)``.
            i (Tensor): IR features ``(B, C, h, w)``.
            text_feats (Tensor): Word tokens ``(B, T, token_dim)``.
            text_mask (Tensor): ``(B, T)``, nonzero for words.

        Returns:
            Tensor: ``(1 - alpha) y + alpha i``, ``(B, C, h, w)``.
        """
        mask = text_mask.to(text_feats.dtype).unsqueeze(-1)
        sentence = (text_feats * mask).sum(1) / mask.sum(1).clamp(min=1)
        z = torch.cat([sentence, y.mean((2, 3)), i.mean((2, 3))], dim=1)
        alpha = torch.sigmoid(self.excite(torch.relu(self.squeeze(z))))[..., None, None]
        return (1 - alpha) * y + alpha * i
