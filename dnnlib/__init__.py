"""Generic utilities shared by every part of the project (configs, dynamic construction, URLs)."""

from .util import EasyDict, make_cache_dir_path  # noqa: F401
