"""Weights-only checkpoint loading that still resumes mmengine runs, and saving converted weights.

torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10 checkpoints carry a
few non-tensor objects in their ``meta``: the message hub's ``HistoryBuffer`` with numpy
arrays and scalars, and the buffer's statistics methods, which pickle as
``getattr(HistoryBuffer, 'mean')``. We allow exactly those, never unpickling of arbitrary
code: ``getattr`` itself is not allowed, only a stand-in that resolves HistoryBuffer's public
methods and refuses everything else.
"""
import inspect
import json
import pickle
from typing import Any, Callable, Dict, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

_installed = False


def _history_buffer_method(owner: type, name: str) -> Callable:
    """Stands in for ``getattr`` while unpickling: only ``HistoryBuffer``'s own methods."""
    method = vars(owner).get(name) if owner is HistoryBuffer else None
    if name.startswith('_') or not inspect.isfunction(method):
        raise pickle.UnpicklingError(
            f'refusing getattr({getattr(owner, "__name__", owner)!r}, {name!r}) in a '
            'checkpoint: only the statistics methods of mmengine\'s HistoryBuffer are allowed')
    return method


def mmengine_checkpoint_types() -> list:
    """The non-tensor globals found in checkpoints saved by mmengine's Runner."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes)
                     if name.endswith('DType')]
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr'),
            (_history_buffer_method, '__builtin__.getattr'), multiarray._reconstruct,
            multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


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


def save_weights(state_dict: Dict[str, torch.Tensor], path: str, meta: dict) -> None:
    """Write converted weights: ``{'state_dict', 'meta'}`` (``.pth``) or ``.safetensors``.

    Both load weights-only: with mmengine's ``load_checkpoint`` / ``load_from`` and
    :func:`mmrisfusion.apis.init_model` (the ``.pth`` reads its ``state_dict``), and the
    safetensors file carries ``meta`` as JSON strings in its metadata.

    Args:
        state_dict (dict[str, Tensor]): The weights.
        path (str): Output file; ``.safetensors`` selects that format.
        meta (dict): Where the weights come from (JSON-serialisable values).
    """
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state_dict.items()}, path,
                  metadata={k: json.dumps(v) for k, v in meta.items()})
    else:
        torch.save(dict(state_dict=state_dict, meta=meta), path)
