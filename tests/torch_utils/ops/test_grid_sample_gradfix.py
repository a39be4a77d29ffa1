"""grid_sample: bilinear values from first principles, derivatives of first and second order."""

import numpy as np
import pytest
import torch

from tests.torch_utils.ops.capabilities import GRID_SAMPLE_DOUBLE_BACKWARD
from torch_utils.ops import grid_sample_gradfix


def bilinear_np(img, gx, gy):
    """Sample (C, H, W) at normalised (gx, gy), align_corners=False, zeros outside."""
    c, h, w = img.shape
    x, y = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = np.zeros(c)
    for yi, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
        for xi, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
            if 0 <= xi < w and 0 <= yi < h:
                out += wx * wy * img[:, yi, xi]
    return out


def test_values():
    gen = torch.Generator().manual_seed(0)
    img = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=gen)
    grid = torch.rand(2, 3, 2, 2, dtype=torch.float64, generator=gen) * 2.4 - 1.2  # Some points outside.
    y = grid_sample_gradfix.grid_sample(img, grid)
    for n in range(2):
        for i in range(3):
            for j in range(2):
                gx, gy = grid[n, i, j].tolist()
                np.testing.assert_allclose(y[n, :, i, j].numpy(), bilinear_np(img[n].numpy(), gx, gy), atol=1e-12)


def _image_and_grid():
    gen = torch.Generator().manual_seed(1)
    img = torch.randn(1, 2, 4, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    grid = (torch.rand(1, 3, 2, 2, dtype=torch.float64, generator=gen) * 2.2 - 1.1).requires_grad_()
    return img, grid


def test_gradcheck_input_and_grid():
    assert torch.autograd.gradcheck(grid_sample_gradfix.grid_sample, _image_and_grid())


@pytest.mark.skipif(not GRID_SAMPLE_DOUBLE_BACKWARD, reason='this PyTorch cannot differentiate grid_sample twice')
def test_gradgradcheck_input_and_grid():
    assert torch.autograd.gradgradcheck(grid_sample_gradfix.grid_sample, _image_and_grid())


def test_bad_input():
    with pytest.raises(ValueError, match=r'grid \(N, Ho, Wo, 2\)'):
        grid_sample_gradfix.grid_sample(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 3))
