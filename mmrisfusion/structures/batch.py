"""Reading one sample's source images out of a collated batch."""
from typing import Any, Mapping, Optional, Sequence


def batch_input(inputs: Any, key: str, index: int) -> Optional[Any]:
    """Sample ``index``'s ``key`` (``'vis'`` or ``'ir'``) from a batch's ``inputs``.

    ``PackRISInputs`` gives each sample ``inputs = dict(vis=..., ir=...)``; mmengine's
    ``pseudo_collate`` turns a batch of them into ``dict(vis=[...], ir=[...])``,
    ``default_collate`` into ``dict(vis=Tensor, ir=Tensor)``, and a custom collate may keep
    a list of per-sample dicts. All three are read here. The hooks and ``FusionMetric`` read
    the uint8 images this way, before the data preprocessor normalises copies of them.

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
    if isinstance(inputs, Sequence) and index < len(inputs) and isinstance(
            inputs[index], Mapping):
        return inputs[index].get(key)
    return None
