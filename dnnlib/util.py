"""Small generic helpers: attribute dicts, building objects from dotted names."""

import importlib
import os
from typing import Any


class EasyDict(dict):
    """A dict whose keys can also be read and written as attributes (`cfg.lr` == `cfg['lr']`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


def make_cache_dir_path(*paths: str) -> str:
    """Folder for downloaded and built files: $PSTYLE3D_CACHE_DIR, else ~/.cache/pstyle3d."""
    root = os.environ.get('PSTYLE3D_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache', 'pstyle3d')
    return os.path.join(root, *paths)


def get_obj_by_name(name: str) -> Any:
    """Resolve a dotted name such as 'training.triplane.TriPlaneGenerator' to the object it names."""
    module_name, _, attr = name.rpartition('.')
    if not module_name:
        raise ValueError(f'expected a dotted name such as "package.module.Class", got "{name}"')
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f'cannot resolve "{name}": module "{module_name}" does not import ({err})') from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AttributeError(f'cannot resolve "{name}": module "{module_name}" has no "{attr}"') from None


def call_func_by_name(*args, func_name: str, **kwargs) -> Any:
    """Call the function (or class) named by a dotted string with the given arguments."""
    func = get_obj_by_name(func_name)
    if not callable(func):
        raise TypeError(f'"{func_name}" is not callable')
    return func(*args, **kwargs)


def construct_class_by_name(*args, class_name: str, **kwargs) -> Any:
    """Build an instance of the class named by a dotted string, e.g. from a config dict."""
    return call_func_by_name(*args, func_name=class_name, **kwargs)
