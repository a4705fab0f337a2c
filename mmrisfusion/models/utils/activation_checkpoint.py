"""Activation checkpointing that is safe under DDP and leaves BN statistics untouched.

mmseg's Swin blocks call ``torch.utils.checkpoint.checkpoint`` without ``use_reentrant``, so
the reentrant variant runs: under DDP with ``find_unused_parameters=True`` it fails at the
first iteration ("Expected to mark a variable ready only once"), it needs inputs that require
gradients, and it ignores keyword arguments. :func:`checkpoint_call` always uses the
non-reentrant variant. It also keeps the running statistics of the norm layers inside the
checkpointed module as they were after the forward: the backward re-runs the forward, and a
BatchNorm in training mode would otherwise update its running mean and variance (and
``num_batches_tracked``) a second time with the same batch, as if its momentum were almost
doubled. The random state is restored for the recomputation (torch's default), so dropout
and drop-path masks are the same in both passes: outputs, gradients and statistics equal
those without checkpointing.
"""
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, List, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.utils.checkpoint import checkpoint


@contextmanager
def _keep_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Undo any update of the norm layers' running statistics made inside the block."""
    buffers: List[Tensor] = [
        buffer for layer in module.modules() if isinstance(layer, _NormBase)
        for buffer in (layer.running_mean, layer.running_var, layer.num_batches_tracked)
        if buffer is not None
    ]
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)


def checkpoint_call(module: Callable[..., Any], *args: Any, enabled: bool = True) -> Any:
    """``module(*args)``, recomputed in the backward instead of stored when ``enabled``.

    Checkpointing applies only where it saves memory: with gradients enabled (training).
    Under ``torch.no_grad`` (inference) the module simply runs.

    Args:
        module (Callable): The module (or function) to run; an ``nn.Module`` gets its norm
            layers' running statistics protected during the recomputation.
        *args: Its positional arguments (tensors, None, tuples of ints, ...).
        enabled (bool): Whether to checkpoint. Defaults to True.

    Returns:
        Any: What ``module(*args)`` returns.
    """
    if not enabled or not torch.is_grad_enabled():
        return module(*args)

    def contexts() -> Tuple[Any, Any]:
        recompute = (_keep_norm_statistics(module) if isinstance(module, nn.Module)
                     else nullcontext())
        return nullcontext(), recompute

    return checkpoint(module, *args, use_reentrant=False, context_fn=contexts)
