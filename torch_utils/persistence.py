"""Persistent network classes: instances remember how they were built and pickle in EG3D's layout.

An instance of a class decorated with `persistent_class` keeps its constructor arguments
(`obj.init_args`, `obj.init_kwargs`) and pickles as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with

    meta = dict(type='class', version=6, module_src=<source text of the defining module>,
                class_name=<class name>, state=<the instance's __dict__>)

which is the layout EG3D (and StyleGAN2-ADA / StyleGAN3) write, so official checkpoints and this
project's snapshots are read by one loader, `legacy.load_network_pkl`.

Unlike EG3D, nothing here executes `module_src`. The source is stored only so the files keep
EG3D's layout; on load the class is found among the classes this process has already imported
(`copy.deepcopy`, or a plain `pickle.load` of a file written by the same code version), and any
other file must go through `legacy.load_network_pkl`, which rebuilds our classes from `init_kwargs`.
"""

import copy
import inspect
import pickle
import sys
from typing import Any, Dict, List, Set

import numpy as np
import torch

import dnnlib

FORMAT_VERSION = 6                      # EG3D's format version of `meta`; files with others are refused.
_decorators: Set[type] = set()          # Every class made persistent in this process.
_src_to_module: Dict[str, Any] = {}     # Source text of an imported module -> that module.


def persistent_class(orig_class: type) -> type:
    """Class decorator: record constructor arguments and pickle instances in EG3D's layout.

    Returns a subclass of `orig_class` with the same name, module and docstring. Constructor
    arguments must be plain data (numbers, strings, lists, tuples, dicts, numpy arrays, tensors,
    dtypes, devices or persistent objects) so that a checkpoint can rebuild the object from them
    without running code; anything else raises TypeError when the object is built.
    """
    if not isinstance(orig_class, type):
        raise TypeError(f'persistent_class decorates classes, got {type(orig_class).__name__}')
    if is_persistent(orig_class):
        return orig_class
    module = sys.modules.get(orig_class.__module__)
    if module is None:
        raise ValueError(f'class {orig_class.__name__} claims module "{orig_class.__module__}", which is not imported')
    module_src = _module_source(module)

    class Decorator(orig_class):
        _orig_module_src = module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            _check_init_args(args, kwargs, orig_class.__name__)
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)
            if orig_class.__name__ not in module.__dict__:
                # A loader finds the class by (module, name); a class it cannot reach cannot be reloaded.
                raise TypeError(f'persistent class {orig_class.__name__} is not a top-level name of '
                                f'module {module.__name__}')

        @property
        def init_args(self) -> tuple:
            """Positional constructor arguments (a deep copy)."""
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self) -> dnnlib.EasyDict:
            """Keyword constructor arguments (a deep copy)."""
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            meta = dict(type='class', version=FORMAT_VERSION, module_src=self._orig_module_src,
                        class_name=self._orig_class_name, state=self.__getstate__())
            return _reconstruct_persistent_obj, (meta,)

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__qualname__
    Decorator.__module__ = orig_class.__module__
    Decorator.__doc__ = orig_class.__doc__
    _decorators.add(Decorator)
    return Decorator


def is_persistent(obj: Any) -> bool:
    """True if `obj` is a persistent class or an instance of one."""
    return (isinstance(obj, type) and obj in _decorators) or type(obj) in _decorators


def persistent_classes() -> List[type]:
    """All persistent classes defined so far in this process (those of imported modules)."""
    return sorted(_decorators, key=lambda cls: (cls.__module__, cls.__qualname__))


def _reconstruct_persistent_obj(meta: dict) -> Any:
    """Unpickling hook named in every persistent object's pickle; never executes `meta['module_src']`.

    Succeeds only when `module_src` is exactly the source of a module this process has imported
    (deep copies, or files written by this very code version); otherwise asks for `legacy.load_network_pkl`.
    """
    meta = dnnlib.EasyDict(meta)
    if meta.get('type') != 'class' or meta.get('version') != FORMAT_VERSION:
        raise pickle.UnpicklingError(f'unsupported persistent object: type={meta.get("type")!r}, '
                                     f'version={meta.get("version")!r} '
                                     f'(expected type "class", version {FORMAT_VERSION})')
    module = _src_to_module.get(meta.module_src)
    cls = None if module is None else module.__dict__.get(meta.class_name)
    if cls is None or not is_persistent(cls):
        raise pickle.UnpicklingError(
            f'cannot unpickle persistent class "{meta.class_name}": it was saved from source code that this '
            f'process has not imported, and embedded source is never executed. Load network pickles with '
            f'legacy.load_network_pkl(), which rebuilds this project\'s classes from their init_kwargs.')
    obj = cls.__new__(cls)
    setstate = getattr(obj, '__setstate__', None)
    if callable(setstate):
        setstate(meta.state)
    else:
        obj.__dict__.update(meta.state)
    return obj


def _module_source(module: Any) -> str:
    """Source text of an imported module (stored in pickles for EG3D compatibility only)."""
    try:
        src = inspect.getsource(module)
    except (OSError, TypeError) as err:
        raise ValueError(f'persistent classes must live in a module with a source file; '
                         f'cannot read the source of {module.__name__}: {err}') from err
    _src_to_module[src] = module
    return src


_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, np.generic, np.ndarray,
                  torch.Tensor, torch.dtype, torch.device)


def _check_init_args(args: tuple, kwargs: dict, class_name: str) -> None:
    """Raise TypeError unless every constructor argument is data a checkpoint can hold safely."""
    def check(value: Any, where: str) -> None:
        if isinstance(value, _PLAIN_SCALARS) or is_persistent(value):
            return
        if isinstance(value, (list, tuple, set, frozenset)):
            for idx, item in enumerate(value):
                check(item, f'{where}[{idx}]')
            return
        if isinstance(value, dict):
            for key, item in value.items():
                check(key, f'{where} key {key!r}')
                check(item, f'{where}[{key!r}]')
            return
        raise TypeError(f'{class_name}: constructor argument {where} is a {type(value).__module__}.'
                        f'{type(value).__qualname__}; persistent networks take only plain data (numbers, '
                        f'strings, lists, dicts, arrays, tensors) so checkpoints can rebuild them without running code')
    for idx, arg in enumerate(args):
        check(arg, f'#{idx}')
    for key, arg in kwargs.items():
        check(arg, key)
