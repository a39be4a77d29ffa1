"""The one comparison of an op's compiled plugin (impl='cuda') with its pure-PyTorch reference (impl='ref')."""

from typing import Callable, List, Optional

import numpy as np
import torch

from torch_utils import custom_ops


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    """Equal shapes and values within `tol`, relative to max(1, |expected|max): sums of many terms
    (a bias gradient) round in float32 in proportion to their largest value."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual, expected = actual.detach().cpu().numpy(), expected.detach().cpu().numpy()
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def assert_compiled_equals_reference(fn: Callable[..., torch.Tensor], inputs: List[Optional[torch.Tensor]],
                                     plugin, device: torch.device, tol: float = 1e-5) -> None:
    """fn(*inputs, impl=...) with the plugin and with the reference on `device`: the outputs and the
    gradients of every given input for one random weighting of the output.

    Fails if the plugin would not run these inputs (not built, or not for this device and dtype):
    the comparison would then be the reference against itself.
    """
    on_device = [t.to(device) if t is not None else None for t in inputs]
    assert custom_ops.handles(plugin, *on_device), f'no compiled kernel for {device} / {on_device[0].dtype}'
    results = []
    for impl in ('ref', 'cuda'):
        leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in on_device]
        y = fn(*leaves, impl=impl)
        weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(0)).to(device)
        grads = torch.autograd.grad((y * weight).sum(), [t for t in leaves if t is not None])
        results.append((y, grads))
    (y_ref, g_ref), (y_cmp, g_cmp) = results
    assert_close(y_cmp, y_ref, tol)
    for actual, expected in zip(g_cmp, g_ref):
        assert_close(actual, expected, tol)
