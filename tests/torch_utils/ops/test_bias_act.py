"""bias_act: analytic values, dim != 1, bad input, first and second derivatives (float64)."""

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act

ACTS = list(bias_act.activation_funcs)
IMPLS = ['ref', 'cuda']


def test_defaults_match_eg3d():
    table = bias_act.activation_funcs
    assert [table[a].def_gain for a in ACTS] == [1, np.sqrt(2), np.sqrt(2), 1, 1, 1, 1, 1, np.sqrt(2)]
    assert table['lrelu'].def_alpha == 0.2
    assert [table[a].cuda_idx for a in ACTS] == list(range(1, 10))


@pytest.mark.parametrize('impl', IMPLS)
def test_lrelu_analytic(impl):
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    y = bias_act.bias_act(x, torch.tensor([0.5]), dim=0, act='lrelu', gain=2.0, clamp=2.5, impl=impl)
    np.testing.assert_allclose(y.numpy(), [[-0.6, 0.0, 1.0, 2.0, 2.5]], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('dim', [0, 2, 3])
def test_bias_along_any_dim(dim, impl):
    x = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(dim))
    b = torch.randn(x.shape[dim])
    shape = [-1 if i == dim else 1 for i in range(4)]
    expected = torch.tanh(x + b.reshape(shape)) * 1.5
    y = bias_act.bias_act(x, b, dim=dim, act='tanh', gain=1.5, impl=impl)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_input():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r'b must have shape \(3,\)'):
        bias_act.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match='unknown activation'):
        bias_act.bias_act(x, act='gelu')
    with pytest.raises(ValueError, match='dim=3'):
        bias_act.bias_act(x, torch.zeros(3), dim=3)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('act', ACTS)
def test_gradcheck(act, impl):
    gen = torch.Generator().manual_seed(ACTS.index(act))
    # Keep inputs away from the kinks of relu/lrelu/clamp, where finite differences are meaningless.
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, generator=gen)
    x = (x + 0.1 * x.sign()).requires_grad_()
    b = torch.tensor([0.0, 0.01, -0.01], dtype=torch.float64, requires_grad=True)
    clamp = 1.7 if act in ('linear', 'lrelu') else None

    def fn(x, b):
        return bias_act.bias_act(x, b, act=act, gain=1.3, clamp=clamp, impl=impl)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_mixed_dtypes_use_reference():
    # The kernels want x and b alike; other combinations take the reference path (which promotes).
    x = torch.randn(2, 3, 4)
    b = torch.randn(3, dtype=torch.float64)
    y = bias_act.bias_act(x, b, act='lrelu')
    assert y.dtype == torch.float64
    np.testing.assert_allclose(y.numpy(), bias_act.bias_act(x.double(), b, act='lrelu', impl='ref').numpy())


@pytest.mark.parametrize('impl', IMPLS)
def test_linear_output_may_be_modified_in_place(impl):
    # EG3D's discriminator does `y.add_(x)` on a linear bias_act output; the backward must not need y.
    x = torch.randn(2, 3, 4, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = bias_act.bias_act(x, b, gain=2.0, impl=impl)
    y.add_(1.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full([2, 3, 4], 2.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full([3], 16.0))


@pytest.mark.parametrize('with_bias', [True, False])
@pytest.mark.parametrize('act', ['linear', 'lrelu', 'tanh', 'swish'])
def test_channels_last_stays_channels_last(act, with_bias):
    """The CPU kernels read NHWC-stored x as it is and return NHWC: the NCHW result's numbers, values and gradients."""
    torch.manual_seed(0)
    x, b = torch.randn(2, 7, 5, 6), torch.randn(7) if with_bias else None
    kwargs = dict(act=act, gain=1.3, clamp=0.8)
    x_nchw = x.clone().requires_grad_(True)
    x_nhwc = x.to(memory_format=torch.channels_last).requires_grad_(True)
    y_nchw, y_nhwc = bias_act.bias_act(x_nchw, b, **kwargs), bias_act.bias_act(x_nhwc, b, **kwargs)
    assert y_nhwc.is_contiguous(memory_format=torch.channels_last) and not y_nhwc.is_contiguous()
    assert torch.equal(y_nhwc, y_nchw)
    dy = torch.randn(y_nchw.shape)
    assert torch.equal(torch.autograd.grad(y_nhwc, x_nhwc, dy)[0], torch.autograd.grad(y_nchw, x_nchw, dy)[0])


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('act,gain,clamp', [('lrelu', np.sqrt(2), 256.0), ('linear', 0.5, None)])
def test_inplace_kernel_equals_bias_act(memory_format, act, gain, clamp):
    torch.manual_seed(0)
    x, b = torch.randn(2, 5, 6, 7) * 300, torch.randn(5)
    expected = bias_act.bias_act(x, b, act=act, gain=gain, clamp=clamp, impl='ref')
    y = x.to(memory_format=memory_format, copy=True)
    assert bias_act.bias_act_inplace_(y, b, act, gain, clamp) is y
    assert y.is_contiguous(memory_format=memory_format)
    assert torch.equal(y, expected)
