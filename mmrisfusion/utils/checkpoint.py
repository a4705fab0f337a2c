"""Weights-only checkpoint loading that still resumes mmengine runs.

torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10 checkpoints carry a
few non-tensor types in their ``meta`` (the message hub's ``HistoryBuffer`` with numpy arrays
and scalars). We allow exactly those types, never unpickling of arbitrary code.
"""
from typing import Any, Union

import numpy as np
import torch

_installed = False


def mmengine_checkpoint_types() -> list:
    """The non-tensor types found in checkpoints saved by mmengine's Runner."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes)
                     if name.endswith('DType')]
    return [HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list :func:`mmengine_checkpoint_types` for weights-only loading, once."""
    global _installed
    if not _installed:
        torch.serialization.add_safe_globals(mmengine_checkpoint_types())
        _installed = True


def load_weights_only(path: str, extra_types: Union[list, tuple] = (),
                      map_location: Any = 'cpu') -> Any:
    """``torch.load`` with weights only, allowing the given extra types for this call.

    Args:
        path (str): The checkpoint file.
        extra_types (list | tuple): More types to allow, e.g. ``argparse.Namespace`` for
            checkpoints that pickled their command-line arguments. Defaults to ().
        map_location (Any): As in ``torch.load``. Defaults to 'cpu'.

    Returns:
        Any: The loaded object.
    """
    allow_mmengine_checkpoint_types()
    with torch.serialization.safe_globals(list(extra_types)):
        return torch.load(path, map_location=map_location, weights_only=True)
