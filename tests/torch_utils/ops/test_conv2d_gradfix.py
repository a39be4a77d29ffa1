"""conv2d_gradfix: torch's results, double derivatives, and no_weight_gradients()."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import conv2d_gradfix


@pytest.mark.parametrize('transpose', [False, True])
def test_values_and_gradgradcheck(transpose):
    gen = torch.Generator().manual_seed(int(transpose))
    x = torch.randn(1, 4, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    if transpose:
        fn = lambda x, w: conv2d_gradfix.conv_transpose2d(x, w, stride=2, padding=1, groups=2)
        ref = F.conv_transpose2d(x, w, stride=2, padding=1, groups=2)
    else:
        w4 = w[:, :2]
        fn = lambda x, w: conv2d_gradfix.conv2d(x, w[:, :2], stride=2, padding=1, groups=2)
        ref = F.conv2d(x, w4, stride=2, padding=1, groups=2)
    assert torch.equal(fn(x, w), ref)
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_no_weight_gradients():
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    with conv2d_gradfix.no_weight_gradients():
        gx, = torch.autograd.grad(conv2d_gradfix.conv2d(x, w).sum(), [x])
        assert not conv2d_gradfix.conv2d(x, w).grad_fn.next_functions[1][0]
    assert conv2d_gradfix.weight_gradients_disabled is False
    expected, = torch.autograd.grad(F.conv2d(x, w).sum(), [x])
    assert torch.allclose(gx, expected)
    with conv2d_gradfix.no_weight_gradients(disable=False):
        y = conv2d_gradfix.conv2d(x, w)
    assert torch.autograd.grad(y.sum(), [w])[0].shape == w.shape
