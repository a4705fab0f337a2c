"""Parts of a model that must run in float32 under mixed precision."""
import functools
from typing import Callable, TypeVar

import torch
from torch import Tensor

FuncT = TypeVar('FuncT', bound=Callable)


def float32_forward(forward: FuncT) -> FuncT:
    """Run a module's ``forward`` in float32 (or float64), with autocast off.

    float16 and bfloat16 tensor arguments are cast to float32 (gradients flow back through
    the cast; float32 and float64 ones pass unchanged), and autocast is disabled for the
    device type of the first tensor argument, so the matrix products and convolutions inside
    stay in full precision. For computations that lose their digits in float16/bfloat16:
    image statistics such as SSIM's variances ``E[x^2] - mu^2``, or Sobel gradients of
    images in [0, 1].

    Args:
        forward (Callable): ``forward(self, *args, **kwargs)`` of an ``nn.Module``.

    Returns:
        Callable: The wrapped ``forward``.
    """

    def to_float32(value):
        if isinstance(value, Tensor) and value.dtype in (torch.float16, torch.bfloat16):
            return value.float()
        return value

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        device_type = tensors[0].device.type if tensors else 'cpu'
        with torch.autocast(device_type, enabled=False):
            return forward(self, *map(to_float32, args),
                           **{k: to_float32(v) for k, v in kwargs.items()})

    return wrapper
