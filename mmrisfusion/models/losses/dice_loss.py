"""RIS-FUSION's two-class Dice loss for referring segmentation."""
from typing import Optional

import torch
from torch import Tensor

from mmrisfusion.registry import MODELS

from .loss_term import BaseLossTerm, at_least_float32, check_class_labels


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

    The sums are at least float32 (fp16 or bf16 logits under autocast are upcast), and
    the loss has no host synchronisation: labels are checked on the CPU only (on a GPU the
    check would stall every step; ``LoadRISAnnotation`` gives binary masks by construction).

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
        check_class_labels(seg_label, 2, ignore_index, 'TwoClassDiceLoss')
        # At least float32: fp16 sums over 480 x 480 probabilities lose their digits.
        prob = torch.sigmoid(at_least_float32(seg_logits[:, 1]))
        valid = (seg_label != ignore_index).to(prob.dtype)
        if weight is not None:
            if weight.shape != seg_label.shape:
                raise ValueError(f'TwoClassDiceLoss: weight must be {tuple(seg_label.shape)} '
                                 f'like seg_label, got {tuple(weight.shape)}')
            valid = valid * weight.to(prob.dtype)
        target = (seg_label == 1).to(prob.dtype)
        dims = (1, 2)
        dices, present = [], []
        for p, t in ((prob, target), (1 - prob, 1 - target)):
            t_sum = (t * valid).sum(dims)
            dices.append((2 * (p * t * valid).sum(dims) + self.eps) /
                         ((p * valid).sum(dims) + t_sum + self.eps))
            present.append((t_sum > 0).to(prob.dtype))
        dice, present = torch.stack(dices, 1), torch.stack(present, 1)
        num_present = present.sum(1)
        # Without data-dependent shapes or branches (no host synchronisation): a sample
        # without any valid pixel weighs 0, and a batch without one gives 0 with a graph.
        per_sample = ((1 - dice) * present).sum(1) / num_present.clamp(min=1)
        has_pixels = (num_present > 0).to(prob.dtype)
        loss = (per_sample * has_pixels).sum() / has_pixels.sum().clamp(min=1)
        return self.loss_weight * loss

