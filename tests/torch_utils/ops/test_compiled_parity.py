"""Compiled plugins (impl='cuda': the C++ CPU kernels, and the CUDA kernels on a GPU) against the
pure-PyTorch reference on the same device.

Random shapes and parameters, values and gradients; every case runs on the CPU, and on CUDA too where
a GPU is present (bench/gpu_check.sh). PSTYLE3D_OPS_PARITY_CASES=N runs N cases per op
instead of the default (the suite keeps a small number; larger runs are for kernel work).
"""

import os

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act, upfirdn2d

CASES = int(os.environ.get('PSTYLE3D_OPS_PARITY_CASES', '25'))
ACTS = list(bias_act.activation_funcs)
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def test_plugins_build():
    # If these fail, every impl='cuda' test below silently compares the reference with itself.
    assert bias_act._plugin() is not None
    assert upfirdn2d._plugin() is not None


def run_both(fn, inputs, seed, device):
    """Outputs and input gradients (for a fixed random output weighting) of fn(impl) for both impls on
    `device`, returned on the CPU."""
    results = []
    for impl in ('ref', 'cuda'):
        xs = [t.to(device).requires_grad_() if t is not None else None for t in inputs]
        y = fn(*xs, impl=impl)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)).to(device)
        grads = torch.autograd.grad((y * w).sum(), [t for t in xs if t is not None])
        results.append((y.detach().cpu(), [g.cpu() for g in grads]))
    return results


def assert_close(a, b, tol=1e-4):
    # Bias gradients are sums of many terms: float32 rounding scales with the largest value.
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tol * scale, rtol=tol)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('seed', range(CASES))
def test_bias_act(seed, device):
    rng = np.random.default_rng(seed)
    shape = [int(s) for s in rng.integers(1, 7, size=int(rng.integers(1, 5)))]
    dim = int(rng.integers(0, len(shape)))
    act = ACTS[seed % len(ACTS)]
    x = torch.tensor(rng.standard_normal(shape) * 2, dtype=torch.float32)
    b = torch.tensor(rng.standard_normal(shape[dim]), dtype=torch.float32) if rng.integers(0, 4) else None
    alpha = float(rng.uniform(0, 0.5)) if rng.integers(0, 2) else None
    gain = float(rng.uniform(0.5, 2)) if rng.integers(0, 2) else None
    clamp = float(rng.uniform(0.2, 2)) if rng.integers(0, 2) else None

    def fn(x, b=None, impl='cuda'):
        return bias_act.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=impl)
    (y_ref, g_ref), (y_cmp, g_cmp) = run_both(fn, [x, b], seed, device)
    assert_close(y_cmp, y_ref, 1e-5)
    for a, r in zip(g_cmp, g_ref):
        assert_close(a, r, 1e-5)


def random_filter(rng, max_taps=7):
    taps = int(rng.integers(1, max_taps + 1))
    if rng.integers(0, 2):
        return torch.tensor(rng.uniform(-0.5, 1, taps), dtype=torch.float32)
    return torch.tensor(rng.uniform(-0.5, 1, [int(rng.integers(1, max_taps + 1)), taps]), dtype=torch.float32)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('seed', range(CASES))
def test_upfirdn2d(seed, device):
    rng = np.random.default_rng(1000 + seed)
    f = random_filter(rng)
    up = [int(u) for u in rng.integers(1, 4, size=2)]
    down = [int(d) for d in rng.integers(1, 4, size=2)]
    x = torch.tensor(rng.standard_normal([int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                          int(rng.integers(1, 12)), int(rng.integers(1, 12))]), dtype=torch.float32)
    padding = [int(p) for p in rng.integers(-3, 6, size=4)]
    # Keep the output non-empty: widen the second padding where needed.
    padding[1] = max(padding[1], f.shape[-1] - x.shape[3] * up[0] - padding[0])
    padding[3] = max(padding[3], f.shape[0] - x.shape[2] * up[1] - padding[2])
    flip, gain = bool(rng.integers(0, 2)), float(rng.uniform(0.5, 3))

    def fn(x, impl='cuda'):
        return upfirdn2d.upfirdn2d(x, f.to(x.device), up=up, down=down, padding=padding, flip_filter=flip, gain=gain, impl=impl)
    (y_ref, g_ref), (y_cmp, g_cmp) = run_both(fn, [x], seed, device)
    assert_close(y_cmp, y_ref)
    assert_close(g_cmp[0], g_ref[0])
