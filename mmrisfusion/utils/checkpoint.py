"""Weights-only checkpoint loading that still resumes mmengine runs, and saving converted weights.

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
import collections
import importlib.abc
import inspect
import io
import json
import os.path as osp
import pickle
import sys
import zipfile
from typing import IO, Any, Callable, Dict, Union

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


class _ScriptObject:
    """Stands in for a TorchScript class while its archive is read: keeps its state."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple,
                    requires_grad: bool = False, *unused: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` on a storage read as a flat tensor."""
    return torch.as_strided(storage, size, stride, offset).clone()


# TorchScript names a tensor's storage by its legacy class: the dtype it stands for.
_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool, 'ComplexFloatStorage': torch.complex64,
    'ComplexDoubleStorage': torch.complex128}


class _TorchScriptWeights(pickle.Unpickler):
    """Unpickles a TorchScript archive's ``data.pkl`` into plain objects and tensors.

    Only tensor rebuilding, storage dtypes, ``OrderedDict`` and TorchScript's own classes
    (as :class:`_ScriptObject`) are allowed; nothing of the archive's code is compiled or
    run.
    """

    _IDENTITY = {('torch.jit._pickle', 'build_intlist'), ('torch.jit._pickle', 'build_boollist'),
                 ('torch.jit._pickle', 'build_doublelist'),
                 ('torch.jit._pickle', 'build_tensorlist')}

    def __init__(self, archive: zipfile.ZipFile, prefix: str, name: str) -> None:
        super().__init__(io.BytesIO(archive.read(f'{prefix}data.pkl')))
        self.archive = archive
        self.prefix = prefix
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith('__torch__'):
            return type(name, (_ScriptObject, ), {})
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return _rebuild_tensor
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if (module, name) in self._IDENTITY:
            return lambda values: values
        if (module, name) == ('torch.jit._pickle', 'restore_type_tag'):
            return lambda value, type_str: value
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(
            f'{self.name}: the TorchScript archive holds {module}.{name}, which cannot be read '
            'without running the archive\'s code; convert it to a state dict where you trust '
            "it: torch.save(torch.jit.load(f).state_dict(), 'weights.pt')")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        kind, dtype, key, _, numel = pid
        if kind != 'storage' or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f'{self.name}: unknown persistent id {pid!r}')
        data = bytearray(self.archive.read(f'{self.prefix}data/{key}'))
        return torch.frombuffer(data, dtype=dtype, count=numel) if numel else \
            torch.empty(0, dtype=dtype)


def load_torchscript_weights(path: str) -> Dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive, without running any of it.

    ``torch.jit.load`` compiles the archive's code and runs it (a module's ``__setstate__``
    runs at load), and weights-only ``torch.load`` refuses archives. This reads the pickled
    module tree and its tensor files directly, allowing nothing but tensors and TorchScript
    objects, and names every tensor by its attribute path, as ``state_dict()`` does.

    Args:
        path (str): The archive (a zip with ``<name>/data.pkl``), e.g. OpenAI's CLIP file.

    Returns:
        dict[str, Tensor]: Tensor name to tensor.

    Raises:
        pickle.UnpicklingError: For anything but tensors, or a module that restores itself
            with its own code (``__setstate__``).
    """
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        prefix = next((n[:-len('data.pkl')] for n in names
                       if n.endswith('data.pkl') and n.count('/') <= 1), None)
        if prefix is None:
            raise pickle.UnpicklingError(f'{path}: not a TorchScript archive (no data.pkl)')
        order = archive.read(f'{prefix}byteorder').decode() if f'{prefix}byteorder' in names \
            else 'little'
        if order != sys.byteorder:
            raise pickle.UnpicklingError(f'{path}: tensors stored {order}-endian, this machine '
                                         f'is {sys.byteorder}-endian')
        root = _TorchScriptWeights(archive, prefix, path).load()
    weights: Dict[str, torch.Tensor] = {}

    def collect(obj: Any, where: str) -> None:
        if not isinstance(obj.state, dict):
            raise pickle.UnpicklingError(
                f'{path}: {type(obj).__name__} {where or "(the root module)"} restores itself '
                'with its own code (__setstate__); its tensors cannot be read without running '
                "it. Convert it where you trust it: torch.save(torch.jit.load(f).state_dict(), "
                "'weights.pt')")
        for key, value in obj.state.items():
            if isinstance(value, torch.Tensor):
                weights[where + key] = value
            elif isinstance(value, _ScriptObject):
                collect(value, f'{where}{key}.')

    collect(root, '')
    return weights


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
