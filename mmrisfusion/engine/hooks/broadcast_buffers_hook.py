"""Every rank keeps the same normalisation statistics under DDP (plain BN, no SyncBN)."""
from typing import Any, Dict, List

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from mmrisfusion.registry import HOOKS


def norm_buffers(model: nn.Module) -> List[torch.Tensor]:
    """The running statistics of every BatchNorm (and instance norm that tracks them)."""
    return [buffer for module in model.modules() if isinstance(module, _NormBase)
            for buffer in module.buffers(recurse=False) if buffer is not None]


def broadcast_from_rank_zero(tensors: List[torch.Tensor]) -> None:
    """Copy rank 0's values into ``tensors`` on every rank, one broadcast per dtype."""
    groups: Dict[Any, List[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for group in groups.values():
        flat = torch.cat([tensor.reshape(-1) for tensor in group])
        broadcast(flat, src=0)
        for tensor, value in zip(group, flat.split([t.numel() for t in group])):
            tensor.copy_(value.view_as(tensor))


@HOOKS.register_module()
class BroadcastBuffersHook(Hook):
    """Give every rank rank 0's BatchNorm statistics after each training iteration.

    Under DDP each rank updates its BN running mean and variance from its own batches;
    mmengine's DDP wrapper does not broadcast buffers (``broadcast_buffers=False``, set for
    SyncBN), so with plain BN the ranks drift apart, the checkpoint keeps rank 0's
    statistics and validation runs a different model on every rank. PyTorch's DDP default
    (and the published code's) broadcasts rank 0's buffers before each forward; this hook
    does the same after each iteration, so the ranks also agree when validation runs and
    when a checkpoint is written. Only normalisation statistics are sent (a few kilobytes;
    other buffers never change). Nothing happens on one process, and with SyncBN the ranks
    agree already.
    """

    priority = 'NORMAL'  # before the checkpoint of the iteration is written

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        """Broadcast rank 0's normalisation statistics."""
        if get_world_size() > 1:
            broadcast_from_rank_zero(norm_buffers(runner.model))
