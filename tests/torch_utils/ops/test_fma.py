"""fma: values and broadcasting, first and second derivatives."""

import numpy as np
import torch

from torch_utils.ops import fma


def test_values_broadcast():
    a = torch.randn(2, 3, 4)
    b = torch.randn(3, 1)
    c = torch.randn(1, 4)
    np.testing.assert_allclose(fma.fma(a, b, c).numpy(), (a * b + c).numpy(), rtol=1e-6, atol=1e-6)


def test_gradcheck():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(3, 1, dtype=torch.float64, generator=gen, requires_grad=True)
    c = torch.randn(1, 1, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(fma.fma, (a, b, c))
    assert torch.autograd.gradgradcheck(fma.fma, (a, b, c))
