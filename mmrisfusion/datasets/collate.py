"""Collate RIS samples with the images already stacked, for one pinned host-to-device copy."""
from typing import Any, Optional, Sequence

import torch
from mmengine.dataset import pseudo_collate
from torch.utils.data import default_collate

from mmrisfusion.registry import FUNCTIONS


@FUNCTIONS.register_module()
def ris_collate(data_batch: Sequence[dict], _scope_: Optional[str] = None) -> Any:
    """mmengine's ``pseudo_collate``, with each image modality stacked where it can be.

    ``inputs = dict(vis=(B, 3, H, W), ir=(B, C, H, W))`` uint8 tensors when the samples of
    the batch have one size (a fixed-size resize, as in the shipped pipelines), else the
    per-sample lists ``pseudo_collate`` gives; ``data_samples`` stay a list. Stacking in the
    dataloader's workers lets ``pin_memory`` pin the whole batch, so that
    ``RISDataPreProcessor`` copies each modality to the GPU at once and without waiting.
    ``batch_input`` and the preprocessor read both layouts.

    Args:
        data_batch (Sequence[dict]): Packed samples (``PackRISInputs``).
        _scope_ (str, optional): Ignored. A config inheriting ours through
            ``mmrisfusion::`` gets ``_scope_`` in its ``collate_fn`` dict, and mmengine's
            Runner passes every key but ``type`` to the function.

    Returns:
        Any: The collated batch.
    """
    batch = pseudo_collate(data_batch)
    inputs = batch.get('inputs') if isinstance(batch, dict) else None
    if isinstance(inputs, dict):
        for key, images in inputs.items():
            if (isinstance(images, list) and images
                    and all(isinstance(img, torch.Tensor) for img in images)
                    and len({img.shape for img in images}) == 1):
                # torch's collate stacks straight into shared memory in a worker
                inputs[key] = default_collate(images)
    return batch
