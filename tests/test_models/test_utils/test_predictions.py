import pytest
import torch

from mmrisfusion.models.utils import class_argmax


@pytest.mark.parametrize('classes', [1, 2, 3])
@pytest.mark.parametrize('keepdim', [False, True])
def test_class_argmax_is_argmax(classes, keepdim):
    logits = torch.randn(4, classes, 9, 7, generator=torch.Generator().manual_seed(classes))
    logits[0, :, 0, 0] = 0.5  # a tie: class 0, as argmax
    for dtype in (torch.float32, torch.bfloat16):
        x = logits.to(dtype)
        for dim in (1, -3):
            assert torch.equal(class_argmax(x, dim, keepdim), x.argmax(dim, keepdim=keepdim))
    assert torch.equal(class_argmax(logits[0], 0), logits[0].argmax(0))
