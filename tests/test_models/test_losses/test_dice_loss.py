import pytest
import torch

from mmrisfusion.models.losses import TwoClassDiceLoss
from mmrisfusion.registry import MODELS


def test_reproduces_reference_dice(tiny_reference):
    io = tiny_reference.io
    loss = MODELS.build(dict(type='TwoClassDiceLoss'))
    assert loss.loss_name == 'loss_dice'
    assert (loss(io['logits'], io['target']) - io['dice_loss']).abs().item() <= 1e-6


def _by_hand(prob, target, eps=1e-6):
    dices = []
    for p, t in ((prob, target), (1 - prob, 1 - target)):
        if t.sum() > 0:
            dices.append((2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps))
    return 1 - torch.stack(dices).mean()


def test_classes_present_and_ignore_index():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 6, 6, generator=g)
    label = torch.zeros(2, 6, 6, dtype=torch.long)
    label[0, 1:4, 1:4] = 1  # sample 1 is all background: its Dice is the background one
    label[:, 5] = 255
    prob = torch.sigmoid(logits[:, 1])
    expected = torch.stack([_by_hand(prob[b, :5], label[b, :5].float()) for b in range(2)])
    loss = TwoClassDiceLoss(loss_weight=2.0)
    torch.testing.assert_close(loss(logits, label), 2.0 * expected.mean())
    changed = logits.clone()
    changed[:, :, 5] = 50.0  # ignored pixels have no influence
    torch.testing.assert_close(loss(changed, label), loss(logits, label))


def test_perfect_prediction_and_weights():
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, :2] = 1
    logits = torch.stack([torch.zeros(1, 4, 4), (label.float() * 2 - 1) * 30], 1)
    assert TwoClassDiceLoss()(logits, label).item() < 1e-6
    weight = torch.ones(1, 4, 4)
    weight[0, 0] = 0  # zero weight = ignored
    label_ignored = label.clone()
    label_ignored[0, 0] = 255
    noisy = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(TwoClassDiceLoss()(noisy, label, weight=weight),
                               TwoClassDiceLoss()(noisy, label_ignored))


def test_gradient_and_all_ignored():
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    label = torch.randint(0, 2, (2, 4, 4))
    TwoClassDiceLoss()(logits, label).backward()
    assert logits.grad[:, 1].abs().sum() > 0
    ignored = torch.full((2, 4, 4), 255)
    assert TwoClassDiceLoss()(logits, ignored).item() == 0


def test_bad_input_is_named():
    loss = TwoClassDiceLoss()
    with pytest.raises(ValueError, match=r'\(B, 2, H, W\)'):
        loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='like the logits'):
        loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r'found \[3\]'):
        loss(torch.zeros(1, 2, 4, 4), torch.full((1, 4, 4), 3))
    with pytest.raises(ValueError, match='loss_'):
        TwoClassDiceLoss(loss_name='dice')


def test_no_host_synchronisation():
    """On meta tensors (no data) any data-dependent branch, shape or .item() would raise:
    the loss queues its work on a GPU without waiting for it."""
    logits = torch.randn(2, 2, 8, 8, device='meta', requires_grad=True)
    label = torch.zeros(2, 8, 8, dtype=torch.long, device='meta')
    loss = TwoClassDiceLoss()(logits, label, weight=torch.ones(2, 8, 8, device='meta'))
    assert loss.shape == () and loss.device.type == 'meta'
    loss.backward()
    assert logits.grad.shape == logits.shape


def test_float32_sums_under_autocast():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 48, 48, generator=g).bfloat16()  # what autocast gives
    label = torch.randint(0, 2, (2, 48, 48), generator=g)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = TwoClassDiceLoss()(logits, label)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, TwoClassDiceLoss()(logits.float(), label), rtol=0, atol=0)
    double = TwoClassDiceLoss()(logits.double(), label)
    assert double.dtype == torch.float64  # higher precision is kept
