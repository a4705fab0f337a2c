"""The contract of a fusion block: what a fuser gives it and what it returns."""
from abc import ABCMeta, abstractmethod
from typing import Optional

from torch import Tensor, nn


class BaseFusionBlock(nn.Module, metaclass=ABCMeta):
    """Fuses the VIS-luma and IR feature maps of one fuser level into one map.

    A fuser (``UNetFuser``) builds one block per level from ``fusion_block`` and calls it as
    ``block(y, i, text_feats, text_mask)``:

    - ``y``, ``i``: the two maps, ``(B, C, h, w)`` of one shape;
    - ``text_feats``: the word tokens ``(B, T, token_dim)``, ``text_mask``: ``(B, T)``,
      nonzero for words. A block whose class attribute ``requires_text`` is True gets them
      (the fuser then refuses to run without text); one where it is False must accept None;
    - it returns the fused map, of the shape of ``y``.

    :meth:`forward` checks these shapes, with errors that name the block, and calls
    :meth:`fuse`, which a subclass implements. The fuser fills in those of the constructor
    arguments ``in_channels`` (the level's channels), ``token_dim`` (the tokens' width),
    ``num_heads`` (the fuser's attention heads) and ``norm_cfg`` (the fuser's norm, e.g.
    SyncBN; these two unless the block's config sets them) that the constructor declares;
    the block's config gives the others. A block without attention does not declare
    ``num_heads`` and is not given it.

    Args:
        in_channels (int, optional): Channels of each input map, checked when given.
            Defaults to None.
        token_dim (int, optional): Width of the word tokens, checked when given.
            Defaults to None.
    """

    #: Whether :meth:`forward` needs ``text_feats`` and ``text_mask``.
    requires_text: bool = False

    def __init__(self, in_channels: Optional[int] = None,
                 token_dim: Optional[int] = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.token_dim = token_dim

    def forward(self, y: Tensor, i: Tensor, text_feats: Optional[Tensor] = None,
                text_mask: Optional[Tensor] = None) -> Tensor:
        """Check the inputs, fuse, and check the output.

        Args:
            y (Tensor): VIS-luma features ``(B, C, h, w)``.
            i (Tensor): IR features ``(B, C, h, w)``.
            text_feats (Tensor, optional): Word tokens ``(B, T, token_dim)``; required when
                ``requires_text``. Defaults to None.
            text_mask (Tensor, optional): ``(B, T)``, nonzero for words; required when
                ``requires_text``. Defaults to None.

        Returns:
            Tensor: The fused map ``(B, C, h, w)``.
        """
        self.check_inputs(y, i, text_feats, text_mask)
        out = self.fuse(y, i, text_feats, text_mask)
        if not isinstance(out, Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f'{type(self).__name__}.fuse must return a map shaped like y '
                             f'{tuple(y.shape)}, got {got}')
        return out

    @abstractmethod
    def fuse(self, y: Tensor, i: Tensor, text_feats: Optional[Tensor],
             text_mask: Optional[Tensor]) -> Tensor:
        """Fuse two checked maps; the arguments and the result are those of :meth:`forward`."""

    def check_inputs(self, y: Tensor, i: Tensor, text_feats: Optional[Tensor],
                     text_mask: Optional[Tensor]) -> None:
        """Raise a clear error unless the inputs keep the contract.

        Args:
            y (Tensor): VIS-luma features.
            i (Tensor): IR features.
            text_feats (Tensor, optional): Word tokens.
            text_mask (Tensor, optional): Their mask.
        """
        name = type(self).__name__
        if y.dim() != 4 or y.shape != i.shape:
            raise ValueError(f'{name}: y and i must be (B, C, h, w) maps of one shape, got '
                             f'{tuple(y.shape)} and {tuple(i.shape)}')
        if self.in_channels is not None and y.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built for in_channels={self.in_channels}, got maps '
                             f'with {y.shape[1]} channels')
        if not self.requires_text:
            return
        if text_feats is None or text_mask is None:
            raise ValueError(f'{name} is text-conditioned (requires_text) and needs text_feats '
                             'and text_mask; use a text-free block (AverageFusion, '
                             'ConcatConvFusion, TextFreeGateFusion) to fuse without text')
        width = 'D' if self.token_dim is None else self.token_dim
        if text_feats.dim() != 3 or text_feats.shape[0] != y.shape[0] or (
                self.token_dim is not None and text_feats.shape[2] != self.token_dim):
            raise ValueError(f'{name}: text_feats must be (B={y.shape[0]}, T, {width}), got '
                             f'{tuple(text_feats.shape)}')
        if tuple(text_mask.shape) != tuple(text_feats.shape[:2]):
            raise ValueError(f'{name}: text_mask must be (B, T) = {tuple(text_feats.shape[:2])} '
                             f'like text_feats, got {tuple(text_mask.shape)}')
