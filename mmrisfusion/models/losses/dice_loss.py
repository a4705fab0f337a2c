"""RIS-FUSION's two-class Dice loss for referring segmentation."""
from typing import Optional

import torch
from torch import Tensor

from mmrisfusion.registry import MODELS

from .loss_term import BaseLossTerm


@MODELS.register_module()
class TwoClassDiceLoss(BaseLossTerm):
    """The published two-class Dice loss on 2-channel logits (docs/risfusion.md).

    With ``p = sigmoid(logit of class 1)`` (the class-1 logit alone, not a softmax over the
    two classes) and ``t`` the foreground indicator, per sample:
    ``dice_fg = (2 sum(p t) + eps) / (sum p + sum t + eps)``, ``dice_bg`` likewise with
    ``1 - p`` and ``1 - t``; the sample's Dice is the mean over the classes present in its
    label, and the loss is ``loss_weight * mean over samples of (1 - Dice)``. Pixels equal to
    ``ignore_index`` (and pixels of zero ``weight``) are left out of every sum; a sample
    without any valid pixel is left out of the mean. Follows mmseg's decode-head loss call.

    Args:
        eps (float): Smoothing term of numerator and denominator. Defaults to 1e-6.
        loss_weight (float): Factor on the loss. Defaults to 1.0.
        loss_name (str): Key of the loss in the loss dict; must start with ``loss_``.
            Defaults to 'loss_dice'.
    """

    def __init__(self, eps: float = 1e-6, loss_weight: float = 1.0,
                 loss_name: str = 'loss_dice') -> None:
        super().__init__(loss_weight, loss_name)
        self.eps = eps

    def forward(self, seg_logits: Tensor, seg_label: Tensor, weight: Optional[Tensor] = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            seg_logits (Tensor): Logits ``(B, 2, H, W)``.
            seg_label (Tensor): Labels ``(B, H, W)``: 0 background, 1 foreground,
                ``ignore_index`` ignored.
            weight (Tensor, optional): Per-pixel weights ``(B, H, W)`` (mmseg's
                ``seg_weight``). Defaults to None.
            ignore_index (int): Label value left out. Defaults to 255.
            **kwargs: Other arguments of mmseg's loss call (e.g. ``avg_factor``), unused:
                the Dice is a ratio per sample.

        Returns:
            Tensor: The scalar loss.
        """
        if seg_logits.dim() != 4 or seg_logits.shape[1] != 2:
            raise ValueError('TwoClassDiceLoss: seg_logits must be (B, 2, H, W), got '
                             f'{tuple(seg_logits.shape)}')
        if seg_label.shape != (seg_logits.shape[0], *seg_logits.shape[2:]):
            raise ValueError(f'TwoClassDiceLoss: seg_label must be (B, H, W) = '
                             f'{(seg_logits.shape[0], *seg_logits.shape[2:])} like the '
                             f'logits, got {tuple(seg_label.shape)}')
        valid = seg_label != ignore_index
        bad = valid & (seg_label != 0) & (seg_label != 1)
        if bad.any():
            raise ValueError('TwoClassDiceLoss: labels must be 0, 1 or ignore_index='
                             f'{ignore_index}, found {seg_label[bad].unique().tolist()}')
        valid = valid.to(seg_logits.dtype)
        if weight is not None:
            if weight.shape != seg_label.shape:
                raise ValueError(f'TwoClassDiceLoss: weight must be {tuple(seg_label.shape)} '
                                 f'like seg_label, got {tuple(weight.shape)}')
            valid = valid * weight.to(seg_logits.dtype)
        prob = torch.sigmoid(seg_logits[:, 1])
        target = (seg_label == 1).to(seg_logits.dtype)
        dims = (1, 2)
        dices, present = [], []
        for p, t in ((prob, target), (1 - prob, 1 - target)):
            t_sum = (t * valid).sum(dims)
            dices.append((2 * (p * t * valid).sum(dims) + self.eps) /
                         ((p * valid).sum(dims) + t_sum + self.eps))
            present.append((t_sum > 0).to(seg_logits.dtype))
        dice, present = torch.stack(dices, 1), torch.stack(present, 1)
        num_present = present.sum(1)
        has_pixels = num_present > 0
        per_sample = ((1 - dice) * present).sum(1)[has_pixels] / num_present[has_pixels]
        if per_sample.numel() == 0:  # every pixel ignored: no signal, keep the graph
            return seg_logits.sum() * 0.0
        return self.loss_weight * per_sample.mean()
