"""checkpoint_call: recomputes in the backward, same numbers, BN statistics updated once."""
import copy

import torch
from torch import nn

from mmrisfusion.models.utils import checkpoint_call


class CountingBlock(nn.Module):
    """Conv, BN, dropout: every part whose state a recomputation could disturb."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.calls = 0

    def forward(self, x, scale):
        self.calls += 1
        return self.drop(torch.relu(self.bn(self.conv(x)))) * scale


def _run(block, x, enabled):
    torch.manual_seed(3)
    out = checkpoint_call(block, x, 2.0, enabled=enabled)
    out.square().sum().backward()
    return out


def test_equal_outputs_gradients_and_statistics_and_recomputes():
    torch.manual_seed(0)
    plain = CountingBlock().train()
    cp = copy.deepcopy(plain)
    x = torch.randn(2, 3, 8, 8)
    x_plain, x_cp = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_plain, out_cp = _run(plain, x_plain, False), _run(cp, x_cp, True)
    assert (plain.calls, cp.calls) == (1, 2)  # the backward re-ran the forward
    assert (out_plain == 0).any()  # dropout was active, with the same mask in both passes
    torch.testing.assert_close(out_cp, out_plain, rtol=0, atol=0)
    torch.testing.assert_close(x_cp.grad, x_plain.grad, rtol=0, atol=0)
    for (name, p_plain), p_cp in zip(plain.named_parameters(), cp.parameters()):
        torch.testing.assert_close(p_cp.grad, p_plain.grad, rtol=0, atol=0, msg=name)
    # Running statistics as after one update, not two.
    for name, b_plain in plain.bn.named_buffers():
        torch.testing.assert_close(getattr(cp.bn, name), b_plain, rtol=0, atol=0, msg=name)
    assert int(cp.bn.num_batches_tracked) == 1


def test_inputs_without_grad_still_train_the_parameters():
    # The reentrant variant (mmseg's) gives no parameter gradients here.
    block = CountingBlock().train()
    checkpoint_call(block, torch.randn(2, 3, 8, 8), 1.0).sum().backward()
    assert block.calls == 2 and block.conv.weight.grad is not None


def test_no_checkpointing_without_grad_or_when_disabled():
    block = CountingBlock().eval()
    with torch.no_grad():
        checkpoint_call(block, torch.randn(1, 3, 4, 4), 1.0)
    assert block.calls == 1
    checkpoint_call(block, torch.randn(1, 3, 4, 4), 1.0, enabled=False).sum().backward()
    assert block.calls == 2
