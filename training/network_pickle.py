"""Loading network pickles (EG3D's official checkpoints, this project's snapshots, the PStyle-3D
authors' checkpoints) into this project's classes, without running code from the file.

A network pickle holds a dict with `G`, `D`, `G_ema`, `training_set_kwargs`, `augment_pipe` (EG3D's
layout, see docs/formats.md); the networks are persistent objects (torch_utils/persistence.py)
that carry their constructor arguments and the source code of their defining module.
torch_utils.safe_pickle unpickles the file into inert records; here each network record is rebuilt
as this project's class of the same name from its `init_kwargs` (the embedded `module_src` is
never executed), then its parameters and buffers are copied in with name and shape checks.
`legacy.load_network_pkl` (EG3D's name) is `load_network_pkl` of this module.
"""

import copy
import importlib
import io
import os
import re
import sys
import warnings
from typing import Any, BinaryIO, Dict, Iterator, Tuple, Union

import numpy as np
import torch

from torch_utils import persistence
from torch_utils.safe_pickle import PersistentRecord, Record, restricted_load
from training import pstyle_compat

# Modules whose persistent classes network pickles may name (imported on demand).
NETWORK_MODULES = ('training.triplane', 'training.dual_discriminator', 'training.networks_stylegan2',
                   'training.superresolution', 'training.domain_adaptation')

# Plain (non-persistent) modules that EG3D's networks pickle by reference (training/triplane.py).
EG3D_MODULE_REFERENCES = frozenset([
    'training.triplane.OSGDecoder',
    'training.volumetric_rendering.renderer.ImportanceRenderer',
    'training.volumetric_rendering.ray_marcher.MipRayMarcher2',
    'training.volumetric_rendering.ray_sampler.RaySampler',
])

# Plain module classes that moved; pickles written before the move name their old home.
MOVED_MODULE_CLASSES = {
    'training.domain_adaptation.ModRes': 'training.dam_layers.ModRes',
    'training.domain_adaptation.ModResConv': 'training.dam_layers.ModResConv',
    'training.domain_adaptation.AdaptiveInstanceNorm': 'training.dam_layers.AdaptiveInstanceNorm',
}

_NETWORK_KEYS = ('G', 'D', 'G_ema')
_CLASS_NAME_KEYS = ('class_name', 'superresolution_module')  # init_kwargs entries that name a class to build
_MODULE_INTERNALS = frozenset(torch.nn.Module().__dict__) | {'_init_args', '_init_kwargs'}


def is_module_class(module: str, name: str) -> bool:
    """Whether `module.name` is a plain nn.Module class of this project that a network may pickle by
    reference (see torch_utils.safe_pickle.RestrictedUnpickler)."""
    qualified_name = MOVED_MODULE_CLASSES.get(f'{module}.{name}', f'{module}.{name}')
    if qualified_name in EG3D_MODULE_REFERENCES:
        return True
    module, _, name = qualified_name.rpartition('.')
    if module.split('.')[0] not in ('training', 'torch_utils') or not name.isidentifier():
        return False
    try:
        obj = getattr(importlib.import_module(module), name, None)  # only this project's own code
    except ImportError:
        return False
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def load_network_pkl(f: Union[BinaryIO, str, os.PathLike], force_fp16: bool = False) -> Dict[str, Any]:
    """Load a network pickle into this project's classes without running code from the file.

    f: a path, or a file opened in binary mode (e.g. from `dnnlib.util.open_url`); bytes are refused
    (wrap them in io.BytesIO), as are text-mode files.
    force_fp16: rebuild G, D and G_ema with `num_fp16_res=4, conv_clamp=256` (as EG3D's option).

    Returns a dict with `G` and `G_ema` (torch.nn.Module), `D` (a torch.nn.Module, or None for the
    PStyle-3D authors' .pt checkpoints, which publish no discriminator), `training_set_kwargs` and
    `augment_pipe` (None when absent), plus any further entries of the file (plain data or networks,
    e.g. a training snapshot's `G_src` and `resume_state`).
    Raises NetworkPickleError (a pickle.UnpicklingError) for refused or broken files, TypeError for
    an argument that is not a path or a binary file, and ValueError when the networks do not fit
    this project's classes (naming the class, key and shapes).
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as file:
            return load_network_pkl(file, force_fp16=force_fp16)
    if isinstance(f, (bytes, bytearray, memoryview)):
        raise TypeError('load_network_pkl takes a path or a binary file, not bytes: wrap the bytes in io.BytesIO(data)')
    if isinstance(f, io.TextIOBase):
        raise TypeError('load_network_pkl needs a file opened in binary mode: '
                        f'open({getattr(f, "name", "...")!r}, "rb")')
    if not hasattr(f, 'read'):
        raise TypeError(f'load_network_pkl takes a path or a binary file, got {type(f).__name__}')
    source = str(getattr(f, 'name', '<network pickle stream>'))
    ckpt = pstyle_compat.read_pstyle3d_checkpoint(f)  # the PStyle-3D authors' torch.save state dicts
    if ckpt is not None:
        return pstyle_compat.pstyle3d_networks(ckpt)
    raw = restricted_load(f, source, is_module_class)
    if isinstance(raw, tuple):
        raise ValueError(f'{source} is a TensorFlow-era StyleGAN pickle (a tuple); only PyTorch network pickles '
                         f'(a dict with G, D, G_ema) are supported')
    if not isinstance(raw, dict) or any(key not in raw for key in _NETWORK_KEYS):
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f'{source} must hold a dict with keys {list(_NETWORK_KEYS)}; found {found}')

    data: Dict[str, Any] = {}
    for key, value in raw.items():
        where = f'{source}[{key!r}]'
        if key == 'augment_pipe' and isinstance(value, PersistentRecord) and _find_classes(value.class_name) == []:
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
    if isinstance(value, PersistentRecord):
        return _rebuild_network(value, where, force_fp16)
    if isinstance(value, Record):
        raise ValueError(f'{where} is a plain {value.qualified_name} module, which carries no constructor '
                         f'arguments; only persistent networks can be rebuilt')
    if isinstance(value, dict):
        items = {key: _materialize(item, f'{where}[{key!r}]') for key, item in value.items()}
        return items if type(value) is dict else type(value)(items)
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_materialize(item, f'{where}[{idx}]') for idx, item in enumerate(value))
    return value


def _rebuild_network(record: PersistentRecord, where: str, force_fp16: bool) -> torch.nn.Module:
    """Build this project's class for `record` from its init_args/init_kwargs and copy its tensors in."""
    cls = resolve_class(record, where)
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
        importlib.import_module(name)


def _find_classes(class_name: str) -> list:
    _import_network_modules()
    return [cls for cls in persistence.persistent_classes() if cls.__name__ == class_name]


def resolve_class(record: PersistentRecord, where: str) -> type:
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


def _record_tensors(record: Record, prefix: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
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
        if not isinstance(child, Record):
            raise ValueError(f'submodule {prefix}{name} must be a module, got {type(child).__name__}')
        yield from _record_tensors(child, f'{prefix}{name}.')


def _copy_tensors(record: PersistentRecord, network: torch.nn.Module, where: str) -> None:
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
