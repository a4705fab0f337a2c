"""Weights-only checkpoint loading that still resumes mmengine runs.

Every checkpoint we read goes through :func:`load_weights_only`, which passes
``weights_only=True`` to ``torch.load`` explicitly: torch's default depends on the
environment (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns it off for every call that does not
say), and a checkpoint whose pickle runs code would then run it. mmengine's Runner
(``resume``, ``load_from``, ``init_cfg=dict(type='Pretrained')``) calls ``torch.load``
without the argument, so :func:`use_weights_only_checkpoints` (run by ``import mmrisfusion``)
replaces the loaders it registers with :class:`~mmengine.runner.CheckpointLoader`.

mmengine 0.10 checkpoints carry a few non-tensor objects in their ``meta``: the message
hub's ``HistoryBuffer`` with numpy arrays and scalars, and the buffer's statistics methods,
which pickle as ``getattr(HistoryBuffer, 'mean')``. We allow exactly those, never unpickling
of arbitrary code: ``getattr`` itself is not allowed, only a stand-in that resolves
HistoryBuffer's public methods and refuses everything else.
"""
import importlib.abc
import inspect
import io
import os.path as osp
import pickle
import sys
from typing import IO, Any, Callable, Union

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


def load_weights_only(path: Union[str, IO[bytes]], extra_types: Union[list, tuple] = (),
                      map_location: Any = 'cpu') -> Any:
    """``torch.load`` with weights only, allowing the given extra types for this call.

    Args:
        path (str | file): The checkpoint file, or a binary file object.
        extra_types (list | tuple): More types to allow, e.g. ``argparse.Namespace`` for
            checkpoints that pickled their command-line arguments. Defaults to ().
        map_location (Any): As in ``torch.load``. Defaults to 'cpu'.

    Returns:
        Any: The loaded object.

    Raises:
        pickle.UnpicklingError: For a file that holds other types, naming the file and the
            first type refused (torch's own message suggests ``weights_only=False``, which
            would run whatever code the file carries).
    """
    allow_mmengine_checkpoint_types()
    try:
        with torch.serialization.safe_globals(list(extra_types)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).partition('WeightsUnpickler error: ')[2].split('\n')[0] or str(error)
        name = path if isinstance(path, str) else getattr(path, 'name', 'the checkpoint')
        raise pickle.UnpicklingError(
            f'{name}: refused to load with weights only: {reason} A checkpoint may hold '
            "tensors, numbers, strings, containers and mmengine's metadata; unpickling "
            'anything else could run code from the file.') from error


# mmengine's schemes that fetch checkpoints from the internet (a model zoo, a URL).
_DOWNLOAD_PREFIXES = ('http://', 'https://', 'modelzoo://', 'torchvision://', 'open-mmlab://',
                      'openmmlab://', 'mmcls://', 'pavi://')
# mmengine's schemes of remote storage the user owns (read through mmengine.fileio).
_STORAGE_PREFIXES = (r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


def load_from_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file checkpoint loader, weights only."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_weights_only(filename, map_location=map_location)


def load_from_storage_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine's s3/petrel checkpoint loader, weights only."""
    from mmengine import fileio
    with io.BytesIO(fileio.get(filename)) as buffer:
        return load_weights_only(buffer, map_location=map_location)


def refuse_download(filename: str, map_location: Any = None) -> Any:
    """Stands in for mmengine's loaders that download checkpoints: nothing is fetched."""
    raise ValueError(
        f'{filename}: mmrisfusion reads checkpoints from local files only (weights only; '
        'nothing is downloaded at run time). Download the file where there is internet and '
        'pass its local path.')


def register_weights_only_loaders() -> None:
    """Replace mmengine's checkpoint loaders by weights-only ones (idempotent).

    Local files and s3/petrel storage are read with :func:`load_weights_only`; URLs and
    model-zoo names are refused (they would download, and unpickle with torch's default).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme('', load_from_local_weights_only, force=True)
    CheckpointLoader.register_scheme(_STORAGE_PREFIXES, load_from_storage_weights_only,
                                     force=True)
    CheckpointLoader.register_scheme(_DOWNLOAD_PREFIXES, refuse_download, force=True)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback`` right after the module ``name`` is first imported (once)."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = next((spec for spec in (finder.find_spec(fullname, path, target)
                                       for finder in sys.meta_path
                                       if hasattr(finder, 'find_spec'))
                     if spec is not None), None)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_call(module: Any) -> None:
            exec_module(module)
            self.callback()

        spec.loader.exec_module = exec_then_call
        return spec


def use_weights_only_checkpoints() -> None:
    """Make mmengine load every checkpoint weights only, now or when it is imported.

    ``import mmrisfusion`` calls this. Importing ``mmengine.runner`` takes seconds, so when
    it is not imported yet the loaders are registered right after it is.
    """
    if 'mmengine.runner.checkpoint' in sys.modules:
        register_weights_only_loaders()
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport('mmengine.runner.checkpoint',
                                             register_weights_only_loaders))
