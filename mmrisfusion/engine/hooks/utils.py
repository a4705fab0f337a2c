"""Helpers the hooks share to read a collated batch."""
from typing import Any, Optional


def batch_input(inputs: Any, key: str, index: int) -> Optional[Any]:
    """Sample ``index``'s ``key`` (``'vis'`` or ``'ir'``) from a batch's ``inputs``.

    ``PackRISInputs`` gives each sample ``inputs = dict(vis=..., ir=...)``; mmengine's
    ``pseudo_collate`` turns a batch of them into ``dict(vis=[...], ir=[...])``, a stacking
    collate into ``dict(vis=Tensor, ir=Tensor)`` and a custom one may keep a list of dicts.
    All three are read here.

    Args:
        inputs (Any): ``data_batch['inputs']``.
        key (str): The modality key.
        index (int): The sample's position in the batch.

    Returns:
        Any: The uint8 image tensor, or None where the batch has no such key.
    """
    if isinstance(inputs, dict):
        values = inputs.get(key)
        return None if values is None else values[index]
    item = inputs[index]
    return item.get(key) if isinstance(item, dict) else None
