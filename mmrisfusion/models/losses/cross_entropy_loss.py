"""LAVT's class-weighted cross-entropy, safe with ignored pixels."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmrisfusion.registry import MODELS

from .loss_term import BaseLossTerm, at_least_float32, check_class_labels


@MODELS.register_module()
class WeightedCrossEntropyLoss(BaseLossTerm):
    """``F.cross_entropy(logits, label, weight=class_weight)``: LAVT's segmentation loss.

    The loss is PyTorch's class-weighted mean, ``sum(w_y l) / sum(w_y)`` over the pixels
    that are not ``ignore_index`` (LAVT: ``class_weight = [0.9, 1.1]``), at least in float32
    (fp16 or bf16 logits under autocast are upcast), without a host synchronisation (labels
    are checked on the CPU only).

    Why not mmseg's ``CrossEntropyLoss(class_weight=[0.9, 1.1])``: without ignored pixels it
    gives the same number (``tests/test_models/test_losses/test_cross_entropy_loss.py``
    checks it), but mmseg 1.2.2 indexes ``class_weight`` with the raw labels to build its
    averaging factor, so any pixel labelled ``ignore_index`` (255, e.g. padding added by the
    data preprocessor) raises ``IndexError``, whatever ``avg_non_ignore`` says.

    Args:
        class_weight (Sequence[float]): Weight of each class (background, foreground).
            Defaults to (0.9, 1.1).
        loss_weight (float): Factor on the loss. Defaults to 1.0.
        loss_name (str): Key of the loss in the loss dict; must start with ``loss_``.
            Defaults to 'loss_ce'.
    """

    def __init__(self, class_weight: Sequence[float] = (0.9, 1.1), loss_weight: float = 1.0,
                 loss_name: str = 'loss_ce') -> None:
        super().__init__(loss_weight, loss_name)
        # Not persistent: a config value, not a learned state.
        self.register_buffer('class_weight', torch.tensor(class_weight, dtype=torch.float32),
                             persistent=False)

    def forward(self, seg_logits: Tensor, seg_label: Tensor, weight: Optional[Tensor] = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            seg_logits (Tensor): Logits ``(B, K, H, W)``, ``K = len(class_weight)``.
            seg_label (Tensor): Labels ``(B, H, W)`` in ``0..K-1`` or ``ignore_index``.
            weight (Tensor, optional): Per-pixel weights ``(B, H, W)`` (mmseg's
                ``seg_weight``), multiplied into both the sum and its normaliser.
                Defaults to None.
            ignore_index (int): Label value left out. Defaults to 255.
            **kwargs: Other arguments of mmseg's loss call (e.g. ``avg_factor``), unused:
                the normaliser is the sum of the weights, as in PyTorch.

        Returns:
            Tensor: The scalar loss (0 with a graph when every pixel is ignored).
        """
        num_classes = self.class_weight.numel()
        if seg_logits.dim() != 4 or seg_logits.shape[1] != num_classes:
            raise ValueError(f'WeightedCrossEntropyLoss: seg_logits must be (B, {num_classes}, '
                             f'H, W) for {num_classes} class weights, got '
                             f'{tuple(seg_logits.shape)}')
        if seg_label.shape != (seg_logits.shape[0], *seg_logits.shape[2:]):
            raise ValueError('WeightedCrossEntropyLoss: seg_label must be (B, H, W) = '
                             f'{(seg_logits.shape[0], *seg_logits.shape[2:])} like the logits, '
                             f'got {tuple(seg_label.shape)}')
        check_class_labels(seg_label, num_classes, ignore_index, 'WeightedCrossEntropyLoss')
        if weight is not None and weight.shape != seg_label.shape:
            raise ValueError('WeightedCrossEntropyLoss: weight must be '
                             f'{tuple(seg_label.shape)} like seg_label, got '
                             f'{tuple(weight.shape)}')
        seg_logits = at_least_float32(seg_logits)
        class_weight = self.class_weight.to(seg_logits.dtype)
        pixel_loss = F.cross_entropy(seg_logits, seg_label, weight=class_weight,
                                     ignore_index=ignore_index, reduction='none')
        valid = seg_label != ignore_index
        norm = class_weight[seg_label.where(valid, 0)] * valid
        if weight is not None:
            pixel_loss = pixel_loss * weight
            norm = norm * weight
        # Without a data-dependent branch (no host synchronisation): when every pixel is
        # ignored both sums are 0, and the loss is 0 with a graph.
        total = norm.sum()
        return self.loss_weight * pixel_loss.sum() / torch.where(total > 0, total, 1.0)
