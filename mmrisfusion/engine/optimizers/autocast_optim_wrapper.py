"""Mixed precision by autocast alone, for devices and dtypes that need no loss scaling.

mmengine's ``AmpOptimWrapper`` asserts a GPU (its ``GradScaler`` is CUDA's), so ``--amp`` could
not run on a CPU, although CPUs with AVX-512 BF16 (or AMX) multiply bfloat16 matrices several
times faster than float32. bfloat16 has float32's exponent range: gradients neither overflow
nor underflow where float32's would not, so it needs no loss scaler. float16 does; it stays
with ``AmpOptimWrapper`` (a GPU and a ``GradScaler``).
"""
from contextlib import contextmanager
from typing import Iterator, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmrisfusion.registry import OPTIM_WRAPPERS


def autocast_device_type(model: nn.Module) -> str:
    """The device type autocast must cover: that of the model's first parameter or buffer.

    Args:
        model (nn.Module): The model (or a wrapper such as DDP around it).

    Returns:
        str: ``'cpu'`` for a model without tensors, else e.g. ``'cuda'`` or ``'cpu'``.
    """
    for tensor in model.parameters():
        return tensor.device.type
    for tensor in model.buffers():
        return tensor.device.type
    return 'cpu'


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward passes run under ``torch.autocast`` with ``dtype``.

    The device type is that of the model's parameters, so one config trains in bfloat16 on a
    CPU and on a GPU. Gradients and the optimizer state stay float32 (the parameters are
    float32; autocast only casts inputs of the ops on its lists). Loss terms that need
    float32 disable autocast themselves (e.g. the SSIM and Sobel fusion terms).

    ``tools/train.py --amp`` picks this wrapper where there is no GPU (and on a GPU with
    ``--amp-dtype bfloat16``).

    Args:
        dtype (str | torch.dtype): The autocast dtype. Only ``'bfloat16'`` is accepted: float16
            needs loss scaling, which mmengine's ``AmpOptimWrapper`` does (on a GPU).
            Defaults to 'bfloat16'.
        **kwargs: The arguments of :class:`mmengine.optim.OptimWrapper` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype != torch.bfloat16:
            raise ValueError(
                f'AutocastOptimWrapper: dtype must be bfloat16, got {dtype!r}; float16 needs '
                "loss scaling: use dict(type='AmpOptimWrapper', dtype='float16') on a GPU")
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient accumulation as ``OptimWrapper`` does, with autocast around the forward.

        Args:
            model (nn.Module): The model being trained.
        """
        with super().optim_context(model), torch.autocast(autocast_device_type(model),
                                                          dtype=self.cast_dtype):
            yield
