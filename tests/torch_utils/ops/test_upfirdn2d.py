"""upfirdn2d against a naive numpy definition on random shapes, factors, paddings and filters."""

import numpy as np
import pytest
import torch

from torch_utils.ops import upfirdn2d
from tests.torch_utils.ops.naive import upfirdn2d_np

IMPLS = ['ref', 'cuda']


def random_case(rng):
    up = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    down = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    separable = bool(rng.integers(0, 2))
    fw = int(rng.integers(1, 6))
    f = rng.standard_normal(fw) if separable else rng.standard_normal([int(rng.integers(1, 6)), fw])
    h, w = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    padding = [int(p) for p in rng.integers(-2, 5, size=4)]
    # Keep the output non-empty.
    padding[1] = max(padding[1], fw - w * up[0] - padding[0])
    padding[3] = max(padding[3], f.shape[0] - h * up[1] - padding[2])
    x = rng.standard_normal([2, 3, h, w])
    return x, f, up, down, padding, bool(rng.integers(0, 2)), float(rng.uniform(0.5, 2))


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('seed', range(12))
def test_upfirdn2d_matches_naive(seed, impl):
    x, f, up, down, padding, flip, gain = random_case(np.random.default_rng(seed))
    expected = upfirdn2d_np(x, f, up, down, padding, flip, gain)
    ft = torch.tensor(f, dtype=torch.float32)
    y = upfirdn2d.upfirdn2d(torch.tensor(x, dtype=torch.float32), ft, up=list(up), down=list(down), padding=padding,
                            flip_filter=flip, gain=gain, impl=impl)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-4, rtol=1e-4)


def test_helpers_output_sizes():
    x = torch.zeros([1, 2, 6, 10])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert upfirdn2d.upsample2d(x, f).shape == (1, 2, 12, 20)
    assert upfirdn2d.upsample2d(x, f, up=[3, 2]).shape == (1, 2, 12, 30)
    assert upfirdn2d.downsample2d(x, f).shape == (1, 2, 3, 5)
    assert upfirdn2d.filter2d(x, f).shape == (1, 2, 6, 10)
    assert upfirdn2d.filter2d(x, f, padding=[1, 2]).shape == (1, 2, 10, 12)


def test_identity_filter_and_crop():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    np.testing.assert_array_equal(upfirdn2d.upfirdn2d(x, None, padding=[-1, -2, 0, -1]).numpy(), x[:, :, :4, 1:5])
    np.testing.assert_array_equal(upfirdn2d.upfirdn2d(x, None, down=2).numpy(), x[:, :, ::2, ::2])


def test_bad_input():
    with pytest.raises(ValueError, match='4-D'):
        upfirdn2d.upfirdn2d(torch.zeros(3, 4, 5), None)
    with pytest.raises(ValueError, match='padding'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, padding=[1, 2, 3])
    with pytest.raises(ValueError, match='up'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, up=0)
    with pytest.raises(ValueError, match='empty'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, padding=-2)
    with pytest.raises(ValueError, match='float32'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match='impl'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, impl='triton')


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('separable', [False, True])
def test_gradcheck(separable, impl):
    gen = torch.Generator().manual_seed(int(separable))
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 2, 3], separable=separable)

    def fn(x):
        return upfirdn2d.upfirdn2d(x, f, up=[2, 3], down=[3, 2], padding=[2, -1, 1, 2], gain=1.7, impl=impl)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize('seed', range(12))
def test_channels_last_stays_channels_last(seed):
    """An NHWC-stored x is filtered as stored into an NHWC result with the numbers of the NCHW kernel."""
    x, f, up, down, padding, flip, gain = random_case(np.random.default_rng(seed))
    x = torch.tensor(x, dtype=torch.float32).repeat(1, 3, 1, 1)  # 9 channels: a real channel vector
    kwargs = dict(f=torch.tensor(f, dtype=torch.float32), up=list(up), down=list(down), padding=padding,
                  flip_filter=flip, gain=gain)
    expected = upfirdn2d.upfirdn2d(x, **kwargs)
    y = upfirdn2d.upfirdn2d(x.to(memory_format=torch.channels_last), **kwargs)
    assert y.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), atol=1e-5, rtol=1e-5)
