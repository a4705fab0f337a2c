"""LAVT's class-weighted cross-entropy: ours, mmseg's and PyTorch's agree."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss

from mmrisfusion.models.losses import WeightedCrossEntropyLoss
from mmrisfusion.registry import MODELS

LAVT_WEIGHT = torch.tensor([0.9, 1.1])


@pytest.fixture(scope='module')
def io(tiny_reference):
    """Logits and a target from each tiny reference."""
    return tiny_reference.io


def test_equals_lavt_and_mmseg_without_ignored_pixels(io):
    logits, target = io['logits'], io['target']
    lavt = F.cross_entropy(logits, target, weight=LAVT_WEIGHT)
    ours = MODELS.build(dict(type='WeightedCrossEntropyLoss'))
    assert ours.loss_name == 'loss_ce'
    assert (ours(logits, target) - lavt).abs().item() <= 1e-6
    # mmseg's loss with the same class weights is the same weighted mean
    mmseg_ce = CrossEntropyLoss(class_weight=[0.9, 1.1], avg_non_ignore=True)
    assert (mmseg_ce(logits, target) - lavt).abs().item() <= 1e-6
    # and it is not the plain mean of the weighted pixel losses
    plain = F.cross_entropy(logits, target, weight=LAVT_WEIGHT, reduction='none').mean()
    assert (plain - lavt).abs().item() > 1e-4


def test_ignored_pixels_and_weights():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 6, 6, generator=g, requires_grad=True)
    label = torch.randint(0, 2, (2, 6, 6), generator=g)
    label[:, 0] = 255
    loss = WeightedCrossEntropyLoss(loss_weight=2.0)
    value = loss(logits, label)
    expected = F.cross_entropy(logits, label, weight=LAVT_WEIGHT, ignore_index=255)
    torch.testing.assert_close(value, 2.0 * expected)
    value.backward()
    assert logits.grad[:, :, 0].abs().sum() == 0 and logits.grad.abs().sum() > 0
    weight = torch.ones(2, 6, 6)
    weight[:, 1] = 0  # zero weight = ignored
    label2 = label.clone()
    label2[:, 1] = 255
    torch.testing.assert_close(loss(logits, label, weight=weight), loss(logits, label2))
    assert loss(logits, torch.full_like(label, 255)).item() == 0


def test_bad_input_is_named():
    loss = WeightedCrossEntropyLoss()
    with pytest.raises(ValueError, match=r'\(B, 2, H, W\) for 2 class weights'):
        loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r'found \[2\]'):
        loss(torch.zeros(1, 2, 4, 4), torch.full((1, 4, 4), 2))


def test_no_host_synchronisation_and_float32_under_autocast():
    """Meta tensors raise on any data-dependent branch or .item(): none in the loss."""
    logits = torch.randn(2, 2, 8, 8, device='meta', requires_grad=True)
    label = torch.zeros(2, 8, 8, dtype=torch.long, device='meta')
    loss = WeightedCrossEntropyLoss().to('meta')(logits, label,
                                                 weight=torch.ones(2, 8, 8, device='meta'))
    assert loss.shape == () and loss.device.type == 'meta'
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 16, 16, generator=g).bfloat16()
    label = torch.randint(0, 2, (2, 16, 16), generator=g)
    label[0, 0] = 255
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = WeightedCrossEntropyLoss()(logits, label)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, WeightedCrossEntropyLoss()(logits.float(), label),
                               rtol=0, atol=0)
