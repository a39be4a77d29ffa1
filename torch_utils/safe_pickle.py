"""Network pickle I/O that is safe to point at any file: a restricted unpickler and atomic writing.

Reading: `restricted_load` resolves only an allow-list of globals (tensor and storage rebuilds,
containers, numpy scalars, the persistent object hook of torch_utils.persistence, module classes a
caller accepts) and turns every network object into an inert record (`PersistentRecord` keeps the
constructor arguments, state and module source text; `ReferenceRecord` a plain module's state).
Nothing from the file runs: records are rebuilt into real networks by training.network_pickle.

Writing: `atomic_write_pickle` writes to a temporary file in the destination folder, fsyncs it and
renames it over the destination, so a reader sees the old file or the complete new one.
"""

import collections
import importlib
import io
import os
import pickle
from typing import Any, BinaryIO, Callable, Dict

import numpy as np
import torch

import dnnlib
from torch_utils import persistence

class NetworkPickleError(pickle.UnpicklingError):
    """A network pickle was refused or is not in the expected format."""


# ---------------------------------------------------------------------------------------------
# Inert records that stand in for network objects while unpickling.

class Record:
    """An unpickled module that runs nothing: it only keeps its state dict (the module's __dict__)."""
    qualified_name = '<module>'

    def __new__(cls, *args, **kwargs):
        record = super().__new__(cls)
        record.state = {}
        return record

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise NetworkPickleError(f'{self.qualified_name} cannot be called with arguments in a network pickle')

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
            raise NetworkPickleError(f'state of {self.qualified_name} must be a dict with string keys, '
                                     f'got {type(state).__name__}')
        self.state = state


class ReferenceRecord(Record):
    """A plain module pickled by reference to its class (e.g. torch.nn.Softplus)."""


class PersistentRecord(Record):
    """A persistent object: `meta` of `torch_utils.persistence._reconstruct_persistent_obj`."""

    def __init__(self, meta: Any):
        super().__init__()
        if not isinstance(meta, dict) or meta.get('type') != 'class':
            raise NetworkPickleError('persistent object meta must be a dict with type "class"')
        if meta.get('version') != persistence.FORMAT_VERSION:
            raise NetworkPickleError(f'persistent object format version {meta.get("version")!r} is not supported '
                                     f'(expected {persistence.FORMAT_VERSION})')
        if not isinstance(meta.get('class_name'), str) or not isinstance(meta.get('module_src'), str):
            raise NetworkPickleError('persistent object meta needs string "class_name" and "module_src"')
        self.class_name = meta['class_name']
        self.module_src = meta['module_src']  # Kept as text for disambiguation; never executed.
        self.qualified_name = f'persistent {self.class_name}'
        self.__setstate__(meta.get('state'))


_reference_classes: Dict[str, type] = {}


def reference_class(qualified_name: str) -> type:
    """The record class standing in for the module class `qualified_name` (one per name)."""
    if qualified_name not in _reference_classes:
        _reference_classes[qualified_name] = type(qualified_name.rpartition('.')[2], (ReferenceRecord,),
                                                  {'qualified_name': qualified_name})
    return _reference_classes[qualified_name]


# ---------------------------------------------------------------------------------------------
# The restricted unpickler.

def _require_no_hooks(hooks: Any) -> None:
    if hooks:
        raise NetworkPickleError('tensors with backward hooks are not allowed in network pickles')


def _load_storage_from_bytes(data: Any) -> torch.storage.TypedStorage:
    """Replacement for torch.storage._load_from_bytes: read the storage with torch's weights-only loader."""
    if not isinstance(data, (bytes, bytearray)):
        raise NetworkPickleError(f'tensor storage must be bytes, got {type(data).__name__}')
    try:
        storage = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:  # torch's weights-only loader refused something
        raise NetworkPickleError(f'tensor storage bytes hold more than a plain storage: {err}') from err
    if not isinstance(storage, torch.storage.TypedStorage):
        raise NetworkPickleError(f'tensor storage bytes hold a {type(storage).__name__}, not a storage')
    return storage


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, torch.storage.TypedStorage):
        raise NetworkPickleError(f'tensor must be built from a storage, got {type(storage).__name__}')
    _require_no_hooks(backward_hooks)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           collections.OrderedDict(), metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, torch.Tensor):
        raise NetworkPickleError(f'parameter must wrap a tensor, got {type(data).__name__}')
    _require_no_hooks(backward_hooks)
    if state:
        raise NetworkPickleError('parameters with extra Python attributes are not allowed in network pickles')
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module('numpy._core.multiarray')  # numpy >= 2
    except ImportError:
        return importlib.import_module('numpy.core.multiarray')


_MULTIARRAY = _numpy_multiarray()
_ALLOWED_GLOBALS: Dict[str, Any] = {
    'torch._utils._rebuild_tensor_v2': _rebuild_tensor_v2,
    'torch._utils._rebuild_parameter': _rebuild_parameter,
    'torch._utils._rebuild_parameter_with_state': _rebuild_parameter,
    'torch.storage._load_from_bytes': _load_storage_from_bytes,
    'torch.Size': torch.Size,
    'torch.device': torch.device,
    'collections.OrderedDict': collections.OrderedDict,
    'builtins.set': set,
    'builtins.frozenset': frozenset,
    'dnnlib.util.EasyDict': dnnlib.EasyDict,
    'dnnlib.EasyDict': dnnlib.EasyDict,
    'numpy.dtype': np.dtype,
    'numpy.ndarray': np.ndarray,
    'numpy.core.multiarray.scalar': _MULTIARRAY.scalar,
    'numpy._core.multiarray.scalar': _MULTIARRAY.scalar,
    'numpy.core.multiarray._reconstruct': _MULTIARRAY._reconstruct,
    'numpy._core.multiarray._reconstruct': _MULTIARRAY._reconstruct,
    'torch_utils.persistence._reconstruct_persistent_obj': PersistentRecord,
}


def _is_torch_module_class(module: str, name: str) -> bool:
    """Whether `module.name` is one of torch.nn's module classes (e.g. torch.nn.modules.activation.Softplus)."""
    obj = getattr(torch.nn, name, None) if module.startswith('torch.nn.modules.') else None
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals; network objects become inert records.

    is_module_class(module, name): whether a plain module class that a network pickles by reference
    (not torch.nn's own) may appear; it becomes an inert `ReferenceRecord` either way.
    """

    def __init__(self, file: BinaryIO, source: str, is_module_class: Callable[[str, str], bool]):
        super().__init__(file)
        self._source = source
        self._is_module_class = is_module_class

    def find_class(self, module: str, name: str) -> Any:
        qualified_name = f'{module}.{name}'
        if qualified_name in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[qualified_name]
        if module == 'torch' and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if _is_torch_module_class(module, name) or self._is_module_class(module, name):
            return reference_class(qualified_name)
        if module in ('posix', 'nt') and hasattr(os, name):
            qualified_name += f' (os.{name})'  # How os functions are spelled inside pickles.
        raise NetworkPickleError(
            f'refusing to load global {qualified_name} from {self._source}: network pickles may only refer to '
            f'tensor rebuilds, plain containers, numpy scalars, persistent networks and module classes '
            f'(see docs/formats.md); this file is not a network pickle or was crafted to run code')

    def persistent_load(self, pid: Any) -> Any:
        raise NetworkPickleError(f'{self._source} uses pickle persistent ids ({pid!r}): it is a torch.save() '
                                 f'file, not a network pickle')


def restricted_load(f: BinaryIO, source: str, is_module_class: Callable[[str, str], bool]) -> Any:
    """Unpickle a network pickle from binary file `f` with `RestrictedUnpickler`; `source` names it in errors.

    Raises NetworkPickleError for refused globals, torch.save zip archives and truncated or corrupt files.
    """
    if f.seekable():
        head = f.read(4)
        f.seek(-len(head), io.SEEK_CUR)
        if head == b'PK\x03\x04':
            raise NetworkPickleError(f'{source} is a zip archive (e.g. a torch.save() state dict), not a network '
                                     f'pickle; network pickles are plain pickles of a dict with G, D, G_ema')
    try:
        return RestrictedUnpickler(f, source, is_module_class).load()
    except NetworkPickleError:
        raise
    except Exception as err:  # EOFError, UnpicklingError, errors of a cut-off tensor storage, ...
        raise NetworkPickleError(f'{source} is not a complete network pickle (truncated or corrupt file?): '
                                 f'{type(err).__name__}: {err}. Download or copy it again.') from err


# ---------------------------------------------------------------------------------------------
# Writing.

def atomic_write_pickle(obj: Any, path: str) -> None:
    """Pickle `obj` to `path` so that readers see either the old file or the complete new one."""
    with dnnlib.util.atomic_output(path) as tmp_path, open(tmp_path, 'wb') as f:
        pickle.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
