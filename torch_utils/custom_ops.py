"""Build the compiled op plugins (C++ for CPU tensors, C++ + CUDA for GPU tensors) at first use.

A plugin is a set of sources in torch_utils/ops/ that registers its operators with
`TORCH_LIBRARY(<name>, ...)`; after loading, they are `torch.ops.<name>.<op>`. Builds go through
`torch.utils.cpp_extension.load` (ninja) into
`dnnlib.util.make_cache_dir_path('torch_extensions', '<name>-<digest>')`, where the digest covers the
sources, the flags, the Python and torch versions and the device kind, so a changed source or a new
torch gets a fresh build and an unchanged one is loaded without compiling. A file lock serialises
concurrent builds of one plugin (several test workers or training processes starting together).

Environment variables:
    PSTYLE3D_REQUIRE_CUSTOM_OPS=1: a plugin that fails to build raises a RuntimeError carrying the
        compiler's output. Without it, a warning with that output is printed once and `get_plugin`
        returns None, so the ops fall back to their pure-PyTorch paths. CI (.ci/run) sets it, so that
        the compiled-op tests never pass on the fallback.
    PSTYLE3D_DISABLE_CUSTOM_OPS=1: skip the plugins altogether (every op runs its pure-PyTorch path), to
        compare the two or to rule the compiled kernels out when debugging.
"""

import hashlib
import os
import shutil
import sys
import threading
import warnings
from types import SimpleNamespace
from typing import Dict, List, Optional

import torch

from dnnlib.util import make_cache_dir_path

REQUIRE_ENV = 'PSTYLE3D_REQUIRE_CUSTOM_OPS'
DISABLE_ENV = 'PSTYLE3D_DISABLE_CUSTOM_OPS'
CPU_FLAGS = ['-O3', '-DNDEBUG', '-fno-trapping-math']  # No FP traps: lets gcc vectorise branches.


def _simd_flags() -> List[str]:
    """-mavx2 -mfma where this CPU has them (the flags are part of the build digest, so a machine
    without them never loads such a build)."""
    try:
        with open('/proc/cpuinfo') as f:
            cpu_flags = set(f.read().split())
    except OSError:
        return []
    return ['-mavx2', '-mfma'] if {'avx2', 'fma'} <= cpu_flags else []


def _openmp_flags() -> List[str]:
    """-fopenmp where torch's CPU threads are OpenMP's. ATen's at::parallel_for is a header template
    that only runs in parallel when the plugin itself is compiled with OpenMP; without the flag every
    kernel silently runs on one thread. At load time the plugin's libgomp is the one torch has loaded."""
    return ['-fopenmp'] if torch.backends.openmp.is_available() and sys.platform == 'linux' else []


CUDA_FLAGS = ['-O3', '-DNDEBUG']

# The kernels' dtypes: float32 (and float64, which the gradient tests use) on the CPU; float32 and float16 on CUDA.
_PLUGIN_DTYPES = {'cpu': (torch.float32, torch.float64), 'cuda': (torch.float32, torch.float16)}

_plugins: Dict[str, Optional[SimpleNamespace]] = {}  # name -> loaded plugin, or None after a failed build.
_plugins_lock = threading.Lock()  # One build per plugin and process, also with threads.


def device_kind() -> str:
    """'cuda' where this torch can run CUDA and nvcc is available, else 'cpu'."""
    if torch.cuda.is_available() and torch.version.cuda is not None:
        from torch.utils.cpp_extension import CUDA_HOME  # here: seconds to import, needed with CUDA only
        if CUDA_HOME is not None:
            return 'cuda'
    return 'cpu'


def _digest(name: str, kind: str, paths: List[str], flags: List[str]) -> str:
    h = hashlib.sha256()
    for item in [name, kind, torch.__version__, sys.version, *flags]:
        h.update(item.encode() + b'\0')
    for path in paths:
        h.update(os.path.basename(path).encode() + b'\0')
        with open(path, 'rb') as f:
            h.update(f.read() + b'\0')
    return h.hexdigest()[:16]


def get_plugin(name: str, source_dir: str, cpp_sources: List[str], cuda_sources: List[str],
               headers: List[str]) -> Optional[SimpleNamespace]:
    """Load (building if needed) the plugin `name`, or None if it cannot be built.

    Args:
        name: library name used in the sources' TORCH_LIBRARY(...) block.
        source_dir: folder holding the sources.
        cpp_sources, cuda_sources, headers: file names in source_dir; the CUDA sources are
            compiled only where `device_kind()` is 'cuda' (with -DPSTYLE3D_WITH_CUDA).
    Returns:
        SimpleNamespace(ops=torch.ops.<name>, devices={'cpu'} or, with CUDA sources built, {'cpu', 'cuda'}), or None.
    """
    if os.environ.get(DISABLE_ENV, '0') not in ('', '0'):
        return None
    with _plugins_lock:
        if name not in _plugins:
            _plugins[name] = _build_or_warn(name, source_dir, cpp_sources, cuda_sources, headers)
        return _plugins[name]


def _build_or_warn(name: str, source_dir: str, cpp_sources: List[str], cuda_sources: List[str],
                   headers: List[str]) -> Optional[SimpleNamespace]:
    kind = device_kind()
    try:
        ops = _load(name, kind, source_dir, cpp_sources, cuda_sources if kind == 'cuda' else [], headers)
        # A plugin without CUDA sources has CPU kernels only, also where CUDA is available.
        plugin = SimpleNamespace(ops=ops, devices={'cpu', 'cuda'} if kind == 'cuda' and cuda_sources else {'cpu'})
    except Exception as err:  # Compiler errors arrive as RuntimeError, missing tools as OSError etc.
        if os.environ.get(REQUIRE_ENV, '0') not in ('', '0'):
            raise RuntimeError(f'building custom op plugin "{name}" failed and {REQUIRE_ENV} is set: {err}') from err
        warnings.warn(f'Could not build custom op plugin "{name}"; falling back to the slower pure-PyTorch '
                      f'implementation (set {REQUIRE_ENV}=1 to make this an error). Build output:\n{err}')
        plugin = None
    return plugin


def _load(name: str, kind: str, source_dir: str, cpp_sources: List[str], cuda_sources: List[str],
          headers: List[str]):
    # Imported here: cpp_extension takes seconds to import and only a build needs it.
    from filelock import FileLock
    from torch.utils import cpp_extension

    paths = [os.path.join(source_dir, f) for f in [*cpp_sources, *cuda_sources, *headers]]
    openmp = _openmp_flags()
    cflags = CPU_FLAGS + _simd_flags() + openmp + (['-DPSTYLE3D_WITH_CUDA'] if cuda_sources else [])
    digest = _digest(name, kind, paths, cflags + CUDA_FLAGS)
    build_dir = make_cache_dir_path('torch_extensions', f'{name}-{kind}-{digest}')
    library = os.path.join(build_dir, f'{name}.so')
    done_marker = os.path.join(build_dir, 'BUILD_OK')
    os.makedirs(os.path.dirname(build_dir), exist_ok=True)

    with FileLock(build_dir + '.lock'):
        if not os.path.isfile(done_marker):
            # Compile private copies, so the build does not depend on where this checkout lives.
            os.makedirs(build_dir, exist_ok=True)
            for path in paths:
                shutil.copyfile(path, os.path.join(build_dir, os.path.basename(path)))
            sources = [os.path.join(build_dir, f) for f in [*cpp_sources, *cuda_sources]]
            print(f'Building custom op plugin "{name}" for {kind} in {build_dir} ...', flush=True)
            cpp_extension.load(name=name, sources=sources, build_directory=build_dir, extra_cflags=cflags,
                               extra_ldflags=openmp, extra_cuda_cflags=CUDA_FLAGS, with_cuda=bool(cuda_sources),
                               is_python_module=False, verbose=False)
            with open(done_marker, 'w') as f:
                f.write('ok\n')
            print(f'Built custom op plugin "{name}".', flush=True)
        else:
            torch.ops.load_library(library)
    return getattr(torch.ops, name)


def handles(plugin: Optional[SimpleNamespace], *tensors: Optional[torch.Tensor]) -> bool:
    """True if `plugin` was built and has kernels for the tensors' device and dtype (all alike; None skipped)."""
    if plugin is None:
        return False
    first = tensors[0]
    kind = first.device.type
    if kind not in plugin.devices or first.dtype not in _PLUGIN_DTYPES[kind]:
        return False
    return all(t is None or (t.device == first.device and t.dtype == first.dtype) for t in tensors)
