"""bias_act: EG3D's outputs, the compiled kernels against the reference (values and gradients), the
compiled derivatives to second order, bad input, memory formats and the in-place inference kernel."""

import numpy as np
import pytest
import torch

from tests.torch_utils.ops.parity import assert_close, assert_compiled_equals_reference
from torch_utils.ops import bias_act

ACTS = list(bias_act.activation_funcs)
IMPLS = ['ref', 'cuda']


def test_defaults_match_eg3d():
    table = bias_act.activation_funcs
    assert [table[a].def_gain for a in ACTS] == [1, np.sqrt(2), np.sqrt(2), 1, 1, 1, 1, 1, np.sqrt(2)]
    assert table['lrelu'].def_alpha == 0.2
    assert [table[a].cuda_idx for a in ACTS] == list(range(1, 10))


@pytest.mark.parametrize('impl', IMPLS)
def test_matches_eg3d_fixtures(eg3d_ops, impl):
    x, b = eg3d_ops['bias_act_x'], eg3d_ops['bias_act_b']
    for act in ACTS:
        assert_close(bias_act.bias_act(x, b, act=act, impl=impl), eg3d_ops[f'bias_act_{act}'], 1e-4)
    y = bias_act.bias_act(x, b, act='lrelu', gain=2, clamp=0.5, impl=impl)
    assert_close(y, eg3d_ops['bias_act_lrelu_gain2_clamp0.5'], 1e-4)


def test_reference_follows_the_definition_along_any_dim():
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    y = bias_act.bias_act(x, torch.tensor([0.5]), dim=0, act='lrelu', gain=2.0, clamp=2.5, impl='ref')
    np.testing.assert_allclose(y.numpy(), [[-0.6, 0.0, 1.0, 2.0, 2.5]], rtol=1e-6, atol=1e-6)
    x = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    for dim in (0, 2, 3):
        b = torch.randn(x.shape[dim])
        expected = torch.tanh(x + b.reshape([-1 if i == dim else 1 for i in range(4)])) * 1.5
        y = bias_act.bias_act(x, b, dim=dim, act='tanh', gain=1.5, impl='ref')
        np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


# (shape, dim, with bias, alpha, gain, clamp), each run with every activation: NCHW with the defaults;
# the bias on an inner and on the last dim with clamps that cut; a 1-D input; a bias-less odd shape
# with a gain < 1.
CASES = {
    'nchw_defaults': ([2, 5, 9, 11], 1, True, None, None, None),
    'inner_dim_clamp': ([2, 3, 4, 5], 2, True, None, None, 0.5),
    'last_dim_clamp': ([3, 4, 5, 6], 3, True, 0.3, 1.7, 0.9),
    'one_dim': ([7], 0, True, None, 2.0, 1.5),
    'no_bias_odd': ([3, 1, 5, 1], 1, False, 0.05, 0.6, None),
}


@pytest.mark.parametrize('case', CASES)
def test_compiled_equals_reference(case, device):
    shape, dim, with_bias, alpha, gain, clamp = CASES[case]
    gen = torch.Generator().manual_seed(list(CASES).index(case))
    x = torch.randn(shape, generator=gen) * 2
    b = torch.randn(shape[dim], generator=gen) if with_bias else None
    for act in ACTS:
        def fn(x, b=None, impl='cuda'):
            return bias_act.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=impl)
        assert_compiled_equals_reference(fn, [x, b], bias_act._plugin(), device)


@pytest.mark.parametrize('act', ACTS)
def test_compiled_gradients_to_second_order(act):
    gen = torch.Generator().manual_seed(ACTS.index(act))
    # Keep inputs away from the kinks of relu/lrelu/clamp, where finite differences are meaningless.
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, generator=gen)
    x = (x + 0.1 * x.sign()).requires_grad_()
    b = torch.tensor([0.0, 0.01, -0.01], dtype=torch.float64, requires_grad=True)
    clamp = 1.7 if act in ('linear', 'lrelu') else None

    def fn(x, b):
        return bias_act.bias_act(x, b, act=act, gain=1.3, clamp=clamp, impl='cuda')
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_bad_input():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r'b must have shape \(3,\)'):
        bias_act.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match='unknown activation'):
        bias_act.bias_act(x, act='gelu')
    with pytest.raises(ValueError, match='dim=3'):
        bias_act.bias_act(x, torch.zeros(3), dim=3)


def test_mixed_dtypes_use_reference():
    # The kernels want x and b alike; other combinations take the reference path (which promotes).
    x = torch.randn(2, 3, 4)
    b = torch.randn(3, dtype=torch.float64)
    y = bias_act.bias_act(x, b, act='lrelu')
    assert y.dtype == torch.float64
    np.testing.assert_allclose(y.numpy(), bias_act.bias_act(x.double(), b, act='lrelu', impl='ref').numpy())


def test_linear_output_may_be_modified_in_place():
    # EG3D's discriminator does `y.add_(x)` on a linear bias_act output; the backward must not need y.
    x = torch.randn(2, 3, 4, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = bias_act.bias_act(x, b, gain=2.0, impl='cuda')
    y.add_(1.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full([2, 3, 4], 2.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full([3], 16.0))


@pytest.mark.parametrize('with_bias', [True, False])
def test_channels_last_stays_channels_last(with_bias):
    """The CPU kernels read NHWC-stored x as it is and return NHWC: the NCHW result's numbers, values and gradients."""
    torch.manual_seed(0)
    x, b = torch.randn(2, 7, 5, 6), torch.randn(7) if with_bias else None
    dy = torch.randn(x.shape)
    for act in ('linear', 'lrelu', 'tanh', 'swish'):
        kwargs = dict(act=act, gain=1.3, clamp=0.8)
        x_nchw = x.clone().requires_grad_(True)
        x_nhwc = x.to(memory_format=torch.channels_last).requires_grad_(True)
        y_nchw, y_nhwc = bias_act.bias_act(x_nchw, b, **kwargs), bias_act.bias_act(x_nhwc, b, **kwargs)
        assert y_nhwc.is_contiguous(memory_format=torch.channels_last) and not y_nhwc.is_contiguous()
        assert torch.equal(y_nhwc, y_nchw), act
        assert torch.equal(torch.autograd.grad(y_nhwc, x_nhwc, dy)[0], torch.autograd.grad(y_nchw, x_nchw, dy)[0]), act


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last], ids=['nchw', 'nhwc'])
def test_inplace_kernel_equals_bias_act(memory_format):
    torch.manual_seed(0)
    x, b = torch.randn(2, 5, 6, 7) * 300, torch.randn(5)
    for act, gain, clamp in [('lrelu', np.sqrt(2), 256.0), ('linear', 0.5, None)]:
        expected = bias_act.bias_act(x, b, act=act, gain=gain, clamp=clamp, impl='ref')
        y = x.to(memory_format=memory_format, copy=True)
        assert bias_act.bias_act_inplace_(y, b, act, gain, clamp) is y
        assert y.is_contiguous(memory_format=memory_format)
        assert torch.equal(y, expected), act
