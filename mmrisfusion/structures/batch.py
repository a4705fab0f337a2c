"""Reading one sample's source images out of a collated batch."""
from typing import Any, Mapping, Optional, Sequence

import torch


def batch_input(inputs: Any, key: str, index: int) -> Optional[Any]:
    """Sample ``index``'s ``key`` (``'vis'`` or ``'ir'``) from a batch's ``inputs``.

    ``PackRISInputs`` gives each sample ``inputs = dict(vis=..., ir=...)``; mmengine's
    ``pseudo_collate`` turns a batch of them into ``dict(vis=[...], ir=[...])``,
    ``default_collate`` into ``dict(vis=Tensor, ir=Tensor)``, and a custom collate may keep
    a list of per-sample dicts; under test-time augmentation (``TestTimeAug``) ``inputs``
    is a list of collated batches, one per view. All are read here. The hooks and
    ``FusionMetric`` read the uint8 images this way, before the data preprocessor
    normalises copies of them.

    Args:
        inputs (Any): ``data_batch['inputs']``.
        key (str): The modality key.
        index (int): The sample's position in the batch.

    Returns:
        Any: The image (a uint8 (C, H, W) tensor from ``PackRISInputs``), or None where the
        batch has no such entry.
    """
    if isinstance(inputs, Mapping):
        values = inputs.get(key)
        return None if values is None or index >= len(values) else values[index]
    if isinstance(inputs, Sequence) and inputs and isinstance(inputs[0], Mapping):
        first = inputs[0].get(key)
        if isinstance(first, (list, tuple)) or (isinstance(first, torch.Tensor)
                                                and first.ndim == 4):
            # A TestTimeAug batch, one collated batch per view: RISTTAModel's merged
            # sample is the first view's, and so are its sources.
            return batch_input(inputs[0], key, index)
        return inputs[index].get(key) if index < len(inputs) else None
    return None
