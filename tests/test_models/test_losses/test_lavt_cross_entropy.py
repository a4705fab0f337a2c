"""LAVT's weighted cross-entropy is mmseg's CrossEntropyLoss with class_weight [0.9, 1.1].

LAVT computes ``F.cross_entropy(logits, target, weight=[0.9, 1.1])`` (PyTorch's weighted
mean: sum of w_y * l / sum of w_y). mmseg's loss divides by the same sum of class weights,
so configs use it as it is instead of a copy in this package.
"""
import torch
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss


def test_mmseg_weighted_ce_equals_lavt_loss(shared_dir):
    from mmrisfusion.utils.checkpoint import load_weights_only
    io = load_weights_only(shared_dir / 'reference/risfusion/io_tiny.pt')
    logits, target = io['logits'], io['target']
    weight = torch.tensor([0.9, 1.1])
    lavt = F.cross_entropy(logits, target, weight=weight)
    ours = CrossEntropyLoss(class_weight=[0.9, 1.1], loss_weight=1.0)(logits, target)
    assert (ours - lavt).abs().item() <= 1e-6
    # and not the plain mean of weighted pixel losses
    plain = (F.cross_entropy(logits, target, weight=weight, reduction='none')).mean()
    assert (plain - lavt).abs().item() > 1e-4
