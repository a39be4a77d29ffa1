"""filtered_lrelu against a numpy composition of its definition; gradients."""

import numpy as np
import pytest
import torch

from torch_utils.ops import filtered_lrelu, upfirdn2d
from tests.torch_utils.ops.naive import leaky_relu_np, upfirdn2d_np

IMPLS = ['ref', 'cuda']


def flrelu_np(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip):
    x = x + b[None, :, None, None]
    x = upfirdn2d_np(x, fu, (up, up), (1, 1), padding, flip, up ** 2)
    x = leaky_relu_np(x, slope) * gain
    if clamp is not None:
        x = np.clip(x, -clamp, clamp)
    return upfirdn2d_np(x, fd, (1, 1), (down, down), (0, 0, 0, 0), flip, 1.0)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('seed', range(6))
def test_matches_numpy(seed, impl):
    rng = np.random.default_rng(seed)
    up, down = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    fu = rng.uniform(0.1, 1, size=int(rng.integers(1, 9)))
    fd = rng.uniform(0.1, 1, size=[int(rng.integers(1, 5))] * 2)
    x = rng.standard_normal([2, 3, int(rng.integers(3, 7)), int(rng.integers(3, 7))])
    b = rng.standard_normal(3)
    padding = [int(p) + (len(fu) - 1) // 2 for p in rng.integers(-1, 3, size=4)]  # Negative ones included.
    clamp = [None, 0.7][seed % 2]
    flip = bool(seed % 3 == 0)
    expected = flrelu_np(x, fu, fd, b, up, down, padding, 1.3, 0.1, clamp, flip)
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    y = filtered_lrelu.filtered_lrelu(t(x), t(fu), t(fd), t(b), up=up, down=down, padding=padding, gain=1.3,
                                      slope=0.1, clamp=clamp, flip_filter=flip, impl=impl)
    assert tuple(y.shape) == filtered_lrelu.output_shape(x.shape, t(fu), t(fd), up, down, padding)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('impl', IMPLS)
def test_gradcheck(impl):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, generator=gen, requires_grad=True)
    fu = upfirdn2d.setup_filter([1, 3, 3, 1])
    fd = upfirdn2d.setup_filter(np.hanning(10)[1:-1])

    def fn(x, b):
        return filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[4, 3, 5, 2], clamp=0.8, impl=impl)
    assert torch.autograd.gradcheck(fn, (x, b))


def test_bad_input():
    with pytest.raises(ValueError, match=r'b must have shape \(3,\)'):
        filtered_lrelu.filtered_lrelu(torch.zeros(1, 3, 4, 4), b=torch.zeros(2))
    with pytest.raises(ValueError, match='4-D'):
        filtered_lrelu.filtered_lrelu(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match='empty output'):
        filtered_lrelu.filtered_lrelu(torch.zeros(1, 1, 4, 4), fu=torch.ones(6), fd=torch.ones(6), padding=1)
