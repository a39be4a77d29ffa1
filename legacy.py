"""Reading network pickles (EG3D's official checkpoints and this project's snapshots) without running their code.

A network pickle holds a dict with `G`, `D`, `G_ema`, `training_set_kwargs`, `augment_pipe` (EG3D's
layout, see docs/formats.md); the networks are persistent objects (torch_utils/persistence.py)
that carry their constructor arguments and the source code of their defining module.

`load_network_pkl` never lets the file choose what runs: a restricted unpickler resolves only
an allow-list of globals (tensor and storage rebuilds, containers, numpy scalars, the persistent
object hook) and turns every network object into an inert record. The embedded `module_src` is
never executed; each network is rebuilt as this project's class of the same name from its
`init_kwargs`, then its parameters and buffers are copied in with name and shape checks.
"""

import collections
import copy
import importlib
import io
import os
import pickle
import re
import sys
import warnings
from typing import Any, BinaryIO, Dict, Iterator, Tuple, Union

import click
import numpy as np
import torch

import dnnlib
from dnnlib import cli
from torch_utils import persistence
from training import pstyle_compat
from training.snapshot import atomic_write_pickle

# Modules whose persistent classes network pickles may name (imported on demand).
NETWORK_MODULES = ('training.triplane', 'training.dual_discriminator', 'training.networks_stylegan2',
                   'training.superresolution', 'training.augment', 'training.domain_adaptation')

# Plain (non-persistent) modules that EG3D's networks pickle by reference (training/triplane.py).
EG3D_MODULE_REFERENCES = frozenset([
    'training.triplane.OSGDecoder',
    'training.volumetric_rendering.renderer.ImportanceRenderer',
    'training.volumetric_rendering.ray_marcher.MipRayMarcher2',
    'training.volumetric_rendering.ray_sampler.RaySampler',
])

_NETWORK_KEYS = ('G', 'D', 'G_ema')
_CLASS_NAME_KEYS = ('class_name', 'superresolution_module')  # init_kwargs entries that name a class to build
_MODULE_INTERNALS = frozenset(torch.nn.Module().__dict__) | {'_init_args', '_init_kwargs'}


class NetworkPickleError(pickle.UnpicklingError):
    """A network pickle was refused or is not in the expected format."""


# ---------------------------------------------------------------------------------------------
# Inert records that stand in for network objects while unpickling.

class _Record:
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


class _ReferenceRecord(_Record):
    """A plain module pickled by reference to its class (e.g. torch.nn.Softplus)."""


class _PersistentRecord(_Record):
    """A persistent object: `meta` of `torch_utils.persistence._reconstruct_persistent_obj`."""

    def __init__(self, meta: Any):
        super().__init__()
        if not isinstance(meta, dict) or meta.get('type') != 'class':
            raise NetworkPickleError('persistent object meta must be a dict with type "class"')
        if meta.get('version') != persistence._version:
            raise NetworkPickleError(f'persistent object format version {meta.get("version")!r} is not supported '
                                     f'(expected {persistence._version})')
        if not isinstance(meta.get('class_name'), str) or not isinstance(meta.get('module_src'), str):
            raise NetworkPickleError('persistent object meta needs string "class_name" and "module_src"')
        self.class_name = meta['class_name']
        self.module_src = meta['module_src']  # Kept as text for disambiguation; never executed.
        self.qualified_name = f'persistent {self.class_name}'
        self.__setstate__(meta.get('state'))


_reference_classes: Dict[str, type] = {}


def _reference_class(qualified_name: str) -> type:
    """The record class standing in for the module class `qualified_name` (one per name)."""
    if qualified_name not in _reference_classes:
        _reference_classes[qualified_name] = type(qualified_name.rpartition('.')[2], (_ReferenceRecord,),
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
    'torch_utils.persistence._reconstruct_persistent_obj': _PersistentRecord,
}


def _is_module_class(module: str, name: str) -> bool:
    """Whether `module.name` is a torch.nn module class or an nn.Module class of this project."""
    if f'{module}.{name}' in EG3D_MODULE_REFERENCES:
        return True
    if module.startswith('torch.nn.modules.'):
        obj = getattr(torch.nn, name, None)
    elif module.split('.')[0] in ('training', 'torch_utils') and name.isidentifier():
        try:
            obj = getattr(importlib.import_module(module), name, None)  # only this project's own code
        except ImportError:
            return False
    else:
        return False
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals; network objects become inert records."""

    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        qualified_name = f'{module}.{name}'
        if qualified_name in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[qualified_name]
        if module == 'torch' and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if _is_module_class(module, name):
            return _reference_class(qualified_name)
        if module in ('posix', 'nt') and hasattr(os, name):
            qualified_name += f' (os.{name})'  # How os functions are spelled inside pickles.
        raise NetworkPickleError(
            f'refusing to load global {qualified_name} from {self._source}: network pickles may only refer to '
            f'tensor rebuilds, plain containers, numpy scalars, persistent networks and module classes '
            f'(see docs/formats.md); this file is not a network pickle or was crafted to run code')

    def persistent_load(self, pid: Any) -> Any:
        raise NetworkPickleError(f'{self._source} uses pickle persistent ids ({pid!r}): it is a torch.save() '
                                 f'file, not a network pickle')


def _unpickle(f: BinaryIO, source: str) -> Any:
    if f.seekable():
        head = f.read(4)
        f.seek(-len(head), io.SEEK_CUR)
        if head == b'PK\x03\x04':
            raise NetworkPickleError(f'{source} is a zip archive (e.g. a torch.save() state dict), not a network '
                                     f'pickle; network pickles are plain pickles of a dict with G, D, G_ema')
    try:
        return _RestrictedUnpickler(f, source).load()
    except NetworkPickleError:
        raise
    except Exception as err:  # EOFError, UnpicklingError, errors of a cut-off tensor storage, ...
        raise NetworkPickleError(f'{source} is not a complete network pickle (truncated or corrupt file?): '
                                 f'{type(err).__name__}: {err}. Download or copy it again.') from err


# ---------------------------------------------------------------------------------------------
# Rebuilding this project's networks from the records.

def load_network_pkl(f: Union[BinaryIO, str, os.PathLike], force_fp16: bool = False) -> Dict[str, Any]:
    """Load a network pickle into this project's classes without running code from the file.

    f: an open binary file (e.g. from `dnnlib.util.open_url`) or a path.
    force_fp16: rebuild G, D and G_ema with `num_fp16_res=4, conv_clamp=256` (as EG3D's option).
    Returns the pickled dict with `G`, `D`, `G_ema` (torch.nn.Module), `training_set_kwargs` and
    `augment_pipe` (None when absent), plus any further entries of the file (plain data or networks).
    Raises NetworkPickleError (a pickle.UnpicklingError) for refused or broken files and ValueError
    when the networks do not fit this project's classes (naming the class, key and shapes).
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as file:
            return load_network_pkl(file, force_fp16=force_fp16)
    source = str(getattr(f, 'name', '<network pickle stream>'))
    ckpt = pstyle_compat.read_pstyle3d_checkpoint(f)  # the PStyle-3D authors' torch.save state dicts
    if ckpt is not None:
        return pstyle_compat.pstyle3d_networks(ckpt)
    raw = _unpickle(f, source)
    if isinstance(raw, tuple):
        raise ValueError(f'{source} is a TensorFlow-era StyleGAN pickle (a tuple); only PyTorch network pickles '
                         f'(a dict with G, D, G_ema) are supported')
    if not isinstance(raw, dict) or any(key not in raw for key in _NETWORK_KEYS):
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f'{source} must hold a dict with keys {list(_NETWORK_KEYS)}; found {found}')

    data: Dict[str, Any] = {}
    for key, value in raw.items():
        where = f'{source}[{key!r}]'
        if key == 'augment_pipe' and isinstance(value, _PersistentRecord) and _find_classes(value.class_name) == []:
            warnings.warn(f'{where}: this project has no class {value.class_name}; augment_pipe is set to None')
            data[key] = None
            continue
        data[key] = _materialize(value, where, force_fp16=force_fp16 and key in _NETWORK_KEYS)
    data.setdefault('training_set_kwargs', None)
    data.setdefault('augment_pipe', None)
    for key in _NETWORK_KEYS:
        if not isinstance(data[key], torch.nn.Module):
            raise ValueError(f'{source}[{key!r}] must be a network, got {type(data[key]).__name__}')
    return data


def _materialize(value: Any, where: str, force_fp16: bool = False) -> Any:
    """Turn unpickled data into ordinary objects: persistent records become networks, containers recurse."""
    if isinstance(value, _PersistentRecord):
        return _rebuild_network(value, where, force_fp16)
    if isinstance(value, _Record):
        raise ValueError(f'{where} is a plain {value.qualified_name} module, which carries no constructor '
                         f'arguments; only persistent networks can be rebuilt')
    if isinstance(value, dict):
        items = {key: _materialize(item, f'{where}[{key!r}]') for key, item in value.items()}
        return items if type(value) is dict else type(value)(items)
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_materialize(item, f'{where}[{idx}]') for idx, item in enumerate(value))
    return value


def _rebuild_network(record: _PersistentRecord, where: str, force_fp16: bool) -> torch.nn.Module:
    """Build this project's class for `record` from its init_args/init_kwargs and copy its tensors in."""
    cls = _resolve_class(record, where)
    args, kwargs = record.state.get('_init_args'), record.state.get('_init_kwargs')
    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
        raise ValueError(f'{where}: persistent {record.class_name} lacks _init_args (tuple) / _init_kwargs (dict)')
    args = _materialize(args, f'{where}.init_args')
    kwargs = copy.deepcopy(_materialize(kwargs, f'{where}.init_kwargs'))
    _check_class_names(kwargs, f'{where}.init_kwargs')
    if force_fp16:
        fp16_kwargs = kwargs.get('synthesis_kwargs', kwargs)  # Where EG3D keeps these arguments.
        fp16_kwargs['num_fp16_res'] = 4
        fp16_kwargs['conv_clamp'] = 256
    network = cls(*args, **kwargs)
    _copy_tensors(record, network, where)
    _restore_attributes(record.state, network, skip=('num_fp16_res', 'conv_clamp') if force_fp16 else ())
    return network


def _import_network_modules() -> None:
    """Import this project's network modules so their persistent classes are registered."""
    for name in NETWORK_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # A module that exists but fails to import is a real error.
                raise


def _find_classes(class_name: str) -> list:
    _import_network_modules()
    return [cls for cls in persistence.persistent_classes() if cls.__name__ == class_name]


def _resolve_class(record: _PersistentRecord, where: str) -> type:
    """This project's persistent class for a record, disambiguated by the (unexecuted) module source."""
    candidates = _find_classes(record.class_name)
    if not candidates:
        known = sorted({cls.__name__ for cls in persistence.persistent_classes()})
        raise ValueError(f'{where}: this project has no persistent class "{record.class_name}"; '
                         f'known classes: {", ".join(known)}')
    exact = [cls for cls in candidates if cls._orig_module_src == record.module_src]
    if exact or len(candidates) == 1:
        return (exact or candidates)[0]
    # Several modules define the name (e.g. SynthesisBlock): pick the module that shares the most
    # top-level names with the file's module source, read as text.
    file_names = set(re.findall(r'^(?:class|def)\s+(\w+)', record.module_src, flags=re.MULTILINE))
    scores = [len(file_names & set(vars(sys.modules[cls.__module__]))) for cls in candidates]
    best = max(scores)
    if scores.count(best) > 1:
        raise ValueError(f'{where}: cannot tell which class "{record.class_name}" is meant: '
                         f'{[f"{cls.__module__}.{cls.__name__}" for cls in candidates]}')
    return candidates[scores.index(best)]


def _check_class_names(value: Any, where: str) -> None:
    """Constructors build classes named in their kwargs: allow only persistent classes of our network modules."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _CLASS_NAME_KEYS and isinstance(item, str):
                module_name, _, attr = item.rpartition('.')
                module = sys.modules.get(module_name) if module_name in NETWORK_MODULES else None
                if module is None or not persistence.is_persistent(getattr(module, attr, None)):
                    raise ValueError(f'{where}[{key!r}] names "{item}", which is not a persistent class of '
                                     f'this project\'s network modules {list(NETWORK_MODULES)}')
            _check_class_names(item, f'{where}[{key!r}]')
    elif isinstance(value, (list, tuple)):
        for idx, item in enumerate(value):
            _check_class_names(item, f'{where}[{idx}]')


def _record_tensors(record: _Record, prefix: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
    """(state_dict key, tensor) for the parameters and persistent buffers of a record tree."""
    state = record.state
    non_persistent = state.get('_non_persistent_buffers_set') or set()
    for group in ('_parameters', '_buffers'):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == '_buffers' and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f'{prefix}{name} in {group} must be a tensor, got {type(tensor).__name__}')
            yield prefix + name, tensor
    for name, child in (state.get('_modules') or {}).items():
        if child is None:
            continue
        if not isinstance(child, _Record):
            raise ValueError(f'submodule {prefix}{name} must be a module, got {type(child).__name__}')
        yield from _record_tensors(child, f'{prefix}{name}.')


def _copy_tensors(record: _PersistentRecord, network: torch.nn.Module, where: str) -> None:
    """Copy the file's parameters and buffers into `network`, checking names and shapes."""
    ours = network.state_dict(keep_vars=True)
    theirs = dict(_record_tensors(record))
    for key, tensor in theirs.items():
        if key not in ours:
            raise ValueError(f'{where}: the file has tensor "{key}" {tuple(tensor.shape)} which this project\'s '
                             f'{type(network).__name__} does not have')
        if ours[key].shape != tensor.shape:
            raise ValueError(f'{where}: tensor "{key}" has shape {tuple(tensor.shape)} in the file but '
                             f'{tuple(ours[key].shape)} in this project\'s {type(network).__name__}')
    missing = [key for key in ours if key not in theirs]
    if missing:
        warnings.warn(f'{where}: {len(missing)} tensor(s) of {type(network).__name__} are not in the file and keep '
                      f'their initial values: {", ".join(missing[:8])}{" ..." if len(missing) > 8 else ""}')
    with torch.no_grad():
        for key, tensor in theirs.items():
            ours[key].copy_(tensor)
            if isinstance(ours[key], torch.nn.Parameter):
                ours[key].requires_grad_(tensor.requires_grad)


def _is_plain_data(value: Any) -> bool:
    if isinstance(value, (type(None), bool, int, float, str, np.generic)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain_data(item) for key, item in value.items())
    return False


def _restore_attributes(state: Dict[str, Any], network: torch.nn.Module, skip: Tuple[str, ...]) -> None:
    """Carry over plain public attributes changed after construction (e.g. `neural_rendering_resolution`)
    and the train/eval mode; dict attributes are updated key by key so our own extra keys stay."""
    network.train(bool(state.get('training', False)))
    for name, value in state.items():
        if name in _MODULE_INTERNALS or name.startswith('_') or name in skip or not hasattr(network, name):
            continue
        current = getattr(network, name)
        if not (_is_plain_data(current) and _is_plain_data(value)):
            continue  # Tensors, submodules and methods come from the constructor and the tensor copy.
        if isinstance(current, dict) and isinstance(value, dict):
            merged = copy.copy(current)
            merged.update(copy.deepcopy(value))
            value = merged
        if current != value:
            setattr(network, name, copy.deepcopy(value))


@click.command()
@click.option('--source', help='Input network pickle (path or URL)', required=True, metavar='PATH',
              callback=cli.expand_path)
@click.option('--dest', help='Output network pickle', required=True, metavar='PATH')
@click.option('--force-fp16', help='Rebuild the networks with FP16 layers', type=bool, default=False, metavar='BOOL',
              show_default=True)
@click.option('--inference-only', help="Keep what generation needs: G_ema (also stored as G) and D, without a "
              "snapshot's G_src and resume_state (it can no longer resume training)", is_flag=True)
def convert_network_pickle(source: str, dest: str, force_fp16: bool, inference_only: bool) -> None:
    """Rewrite a network pickle in this project's classes (EG3D's layout), e.g. to bundle a trained network.

    Example:

    \b
    python legacy.py --source=~/training-runs/00000-tiny-toon-synthetic-pstyle-gpus1-batch4/network-snapshot-000004.pkl \\
        --dest=networks/pstyle3d-demo-synthetic.pkl --inference-only
    """
    try:
        with dnnlib.util.open_url(source) as f:
            data = load_network_pkl(f, force_fp16=force_fp16)
    except cli.INPUT_ERRORS as err:
        raise cli.network_error('--source', source, err) from err
    if inference_only:
        data = dict(G=data['G_ema'], G_ema=data['G_ema'], D=data['D'],
                    training_set_kwargs=data['training_set_kwargs'], augment_pipe=data['augment_pipe'])
    atomic_write_pickle(data, dest)
    click.echo(f'wrote {dest} ({os.path.getsize(dest) / 2 ** 20:.1f} MiB; keys {sorted(data)})')


if __name__ == '__main__':
    cli.run(convert_network_pickle)
