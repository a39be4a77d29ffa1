"""The plugins' sources: each plugin lists exactly the headers it includes, and the CUDA sources compile
without a GPU (every .cu with `nvcc -c`, every .cpp's CUDA branch with g++).

GPU *execution* is not covered here (no GPU on the CI machines); see docs/benchmarks.md.
"""

import glob
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch.utils.cpp_extension

from torch_utils import custom_ops
from torch_utils.ops import bias_act, upfirdn2d, volume_render

OPS_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'torch_utils', 'ops')
CU_FILES = sorted(glob.glob(os.path.join(OPS_DIR, '*.cu')))
# The bindings with a CUDA branch (volume_render's are CPU-only; its CPU build is checked by its tests).
CUDA_CPP_FILES = [cpp for cpp in sorted(glob.glob(os.path.join(OPS_DIR, '*.cpp')))
                  if 'PSTYLE3D_WITH_CUDA' in Path(cpp).read_text()]
NVCC = shutil.which('nvcc')


def cuda_include_dir():
    """The CUDA toolkit's include folder (nvcc may be a wrapper script, so try the usual places)."""
    roots = [os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'), '/usr/local/cuda']
    if NVCC:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(NVCC))))
    for root in roots:
        if root and os.path.isfile(os.path.join(root, 'include', 'cuda_runtime.h')):
            return os.path.join(root, 'include')
    return None


def includes(path, local_only=False):
    """The files `path` #includes; with local_only, the "quoted" ones (this folder's headers) only."""
    with open(path) as f:
        pattern = r'^\s*#\s*include\s*"([^"]+)"' if local_only else r'^\s*#\s*include\s*[<"]([^>"]+)[>"]'
        return re.findall(pattern, f.read(), flags=re.M)


@pytest.mark.parametrize('module', [bias_act, upfirdn2d, volume_render], ids=lambda m: m.__name__.rsplit('.', 1)[1])
def test_plugin_lists_exactly_the_headers_it_includes(module, monkeypatch):
    """A build compiles private copies of the listed files, and its cache digest covers only them: an
    unlisted header fails the build (or, found elsewhere, goes stale), a listed one not included is dead."""
    requested = {}
    monkeypatch.setattr(custom_ops, 'get_plugin', lambda name, source_dir, cpp_sources, cuda_sources, headers:
                        requested.update(sources=cpp_sources + cuda_sources, headers=headers))
    module._plugin()
    included, todo = set(), list(requested['sources'])
    while todo:
        for inc in includes(os.path.join(OPS_DIR, todo.pop()), local_only=True):
            if inc not in included:
                included.add(inc)
                todo.append(inc)
    assert sorted(requested['headers']) == sorted(included)


def test_cu_files_include_only_cuda_and_own_headers():
    assert len(CU_FILES) == 2
    local_headers = {os.path.basename(h) for h in glob.glob(os.path.join(OPS_DIR, '*.h'))}
    for cu in CU_FILES:
        for inc in includes(cu):
            assert inc in local_headers or inc.startswith('cuda'), f'{cu} includes {inc}'
    for header in local_headers:  # The headers .cu files include stay free of torch too.
        for inc in includes(os.path.join(OPS_DIR, header)):
            assert not inc.startswith(('torch', 'ATen', 'c10')), f'{header} includes {inc}'


@pytest.mark.skipif(NVCC is None, reason='nvcc is not on PATH')
@pytest.mark.parametrize('cu', CU_FILES, ids=os.path.basename)
def test_nvcc_compiles(cu, tmp_path):
    out = subprocess.run([NVCC, '-c', '-std=c++17', '-O3', cu, '-o', str(tmp_path / 'k.o')], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert os.path.getsize(tmp_path / 'k.o') > 0


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None or cuda_include_dir() is None, reason='no CUDA toolkit found')
def test_cpp_cuda_branches_compile(tmp_path):
    # The CPU build of torch ships c10/cuda headers but not their generated macros file; an empty
    # stand-in is enough to type-check the bindings' CUDA branch (-DPSTYLE3D_WITH_CUDA).
    stub = tmp_path / 'c10' / 'cuda' / 'impl'
    stub.mkdir(parents=True)
    (stub / 'cuda_cmake_macros.h').write_text('#pragma once\n')
    flags = ['-std=c++20', '-fsyntax-only', '-DPSTYLE3D_WITH_CUDA', '-isystem', str(tmp_path),
             '-isystem', cuda_include_dir(), '-isystem', sysconfig.get_paths()['include']]
    for inc in torch.utils.cpp_extension.include_paths():
        flags += ['-isystem', inc]
    assert len(CUDA_CPP_FILES) == 2
    procs = [subprocess.Popen(['g++', *flags, cpp], stderr=subprocess.PIPE, text=True) for cpp in CUDA_CPP_FILES]
    for cpp, proc in zip(CUDA_CPP_FILES, procs):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f'{cpp}:\n{err}'
