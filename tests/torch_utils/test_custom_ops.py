"""custom_ops: build once under a lock, reuse the cache, warn once and fall back, or raise if required."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from torch_utils import custom_ops

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_PLUGIN = '''
#include <ATen/core/Tensor.h>
#include <torch/library.h>
at::Tensor twice(const at::Tensor& x) { return x.mul(2); }
TORCH_LIBRARY(pstyle3d_lock_test, m) { m.def("twice(Tensor x) -> Tensor"); }
TORCH_LIBRARY_IMPL(pstyle3d_lock_test, CPU, m) { m.impl("twice", &twice); }
'''

LOAD_TINY = textwrap.dedent('''
    import sys, torch
    from torch_utils import custom_ops
    plugin = custom_ops.get_plugin('pstyle3d_lock_test', sys.argv[1], ['tiny.cpp'], [], [])
    print('result', plugin.ops.twice(torch.ones(2)).tolist())
''')


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('PSTYLE3D_CACHE_DIR', str(tmp_path / 'cache'))
    return tmp_path


def write_broken(tmp_path):
    src = tmp_path / 'src'
    src.mkdir(exist_ok=True)
    (src / 'broken.cpp').write_text('this is not C++ {\n')
    return str(src)


def test_failed_build_warns_once_and_falls_back(cache_dir, monkeypatch):
    monkeypatch.delenv(custom_ops.REQUIRE_ENV, raising=False)
    src = write_broken(cache_dir)
    with pytest.warns(UserWarning, match=r'(?s)pstyle3d_broken_a.*pure-PyTorch.*not C\+\+'):
        assert custom_ops.get_plugin('pstyle3d_broken_a', src, ['broken.cpp'], [], []) is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # A second request neither rebuilds nor warns again.
        assert custom_ops.get_plugin('pstyle3d_broken_a', src, ['broken.cpp'], [], []) is None


def test_failed_build_raises_with_the_compiler_output_when_required(cache_dir, monkeypatch):
    monkeypatch.setenv(custom_ops.REQUIRE_ENV, '1')
    src = write_broken(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # raises instead of warning, not as well
        with pytest.raises(RuntimeError, match=r'(?s)pstyle3d_broken_b.*PSTYLE3D_REQUIRE_CUSTOM_OPS.*not C\+\+'):
            custom_ops.get_plugin('pstyle3d_broken_b', src, ['broken.cpp'], [], [])


def test_ci_requires_the_plugins_in_both_test_runs():
    """.ci/run exports the switch before its first command, so no pytest run can pass on the fallback."""
    lines = (Path(ROOT) / '.ci' / 'run').read_text().splitlines()
    export = lines.index(f'export {custom_ops.REQUIRE_ENV}=1')
    pytest_runs = [i for i, line in enumerate(lines) if '-m pytest' in line and not line.lstrip().startswith('#')]
    assert pytest_runs and export < min(pytest_runs), lines
    assert not any(custom_ops.REQUIRE_ENV in line for line in lines[export + 1:]), 'unset or overridden later'


def test_disable_switch_skips_plugins_without_building(cache_dir, monkeypatch):
    monkeypatch.setenv(custom_ops.DISABLE_ENV, '1')
    src = write_broken(cache_dir)  # Would warn if a build were attempted.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert custom_ops.get_plugin('pstyle3d_disabled', src, ['broken.cpp'], [], []) is None
    assert not (cache_dir / 'cache').exists()


def test_plugin_without_cuda_sources_claims_no_cuda_kernels(cache_dir, monkeypatch):
    """On a CUDA machine a CPU-only plugin (volume_render's) must not claim CUDA tensors: the ops would
    send them to a kernel that does not exist instead of their PyTorch path."""
    monkeypatch.setattr(custom_ops, 'device_kind', lambda: 'cuda')
    loads = []
    monkeypatch.setattr(custom_ops, '_load', lambda name, kind, src, cpp, cuda, headers: loads.append(cuda) or object())
    cpu_only = custom_ops.get_plugin('pstyle3d_cpu_only', str(cache_dir), ['a.cpp'], [], [])
    both = custom_ops.get_plugin('pstyle3d_both', str(cache_dir), ['a.cpp'], ['a.cu'], [])
    assert cpu_only.devices == {'cpu'} and both.devices == {'cpu', 'cuda'}
    assert loads == [[], ['a.cu']]


@pytest.mark.slow
def test_concurrent_builds_share_one_cached_build(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'tiny.cpp').write_text(TINY_PLUGIN)
    env = dict(os.environ, PSTYLE3D_CACHE_DIR=str(tmp_path / 'cache'), PYTHONPATH=ROOT)
    cmd = [sys.executable, '-c', LOAD_TINY, str(src)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all('result [2.0, 2.0]' in out for out in outputs), outputs
    assert sum(out.count('Building custom op plugin') for out in outputs) == 1, outputs  # The other one waited.
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert 'result [2.0, 2.0]' in again.stdout and 'Building' not in again.stdout  # Loaded from the cache.
    builds = [b for b in os.listdir(tmp_path / 'cache' / 'torch_extensions') if not b.endswith('.lock')]
    assert len(builds) == 1
    # The build directory's digest follows the source text and the flags.
    before = custom_ops._digest('x', 'cpu', [str(src / 'tiny.cpp')], [])
    (src / 'tiny.cpp').write_text(TINY_PLUGIN + '// changed\n')
    assert custom_ops._digest('x', 'cpu', [str(src / 'tiny.cpp')], []) != before
    assert custom_ops._digest('x', 'cpu', [str(src / 'tiny.cpp')], ['-O0']) != before


THREADS_PLUGIN = '''
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>
#include <atomic>
// How many distinct at::parallel_for workers ran the items 0..n-1 (one item per task).
int64_t workers(int64_t n) {
    std::atomic<uint64_t> seen{0};
    at::parallel_for(0, n, 1, [&](int64_t, int64_t) { seen |= uint64_t(1) << (at::get_thread_num() % 64); });
    return __builtin_popcountll(seen.load());
}
TORCH_LIBRARY(pstyle3d_threads_test, m) { m.def("workers(int n) -> int"); }
TORCH_LIBRARY_IMPL(pstyle3d_threads_test, CompositeExplicitAutograd, m) { m.impl("workers", &workers); }
'''


@pytest.mark.slow
@pytest.mark.skipif(not custom_ops._openmp_flags(), reason='torch without OpenMP threads, or not Linux')
def test_plugins_run_parallel_for_on_torch_threads(cache_dir):
    # at::parallel_for is a header template: a plugin built without OpenMP runs it on one thread, with
    # no error. The same build flags as the real plugins; three torch threads (not this machine's core
    # count, which a second OpenMP runtime would default to) must give three workers.
    src = cache_dir / 'src'
    src.mkdir()
    (src / 'threads.cpp').write_text(THREADS_PLUGIN)
    plugin = custom_ops.get_plugin('pstyle3d_threads_test', str(src), ['threads.cpp'], [], [])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert plugin.ops.workers(64) == 3
        torch.set_num_threads(1)
        assert plugin.ops.workers(64) == 1
    finally:
        torch.set_num_threads(threads)
