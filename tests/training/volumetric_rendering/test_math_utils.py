"""math_utils: ray/box intersection and multi-dimensional linspace against closed forms."""

import numpy as np
import torch

from training.volumetric_rendering import math_utils


def test_ray_box_limits():
    origins = torch.tensor([[0, 0, 3.0], [0.5, 0, -3.0], [3, 3, 3.0], [0, 0, 0.0]])
    dirs = torch.nn.functional.normalize(torch.tensor([[0, 0, -1.0], [0, 0, 1.0], [0, 0, -1.0], [1, 1, 1.0]]), dim=-1)
    t_min, t_max = math_utils.get_ray_limits_box(origins[None], dirs[None], box_side_length=2)
    assert t_min.shape == t_max.shape == (1, 4, 1)
    np.testing.assert_allclose(t_min[0, :, 0].numpy(), [2, 2, -1, -np.sqrt(3)], rtol=1e-6)
    np.testing.assert_allclose(t_max[0, :, 0].numpy(), [4, 4, -2, np.sqrt(3)], rtol=1e-6)  # ray 2 misses


def test_entry_and_exit_points_lie_on_the_box():
    torch.manual_seed(0)
    origins = torch.randn(200, 3) * 0.2 + torch.tensor([0, 0, 2.7])
    dirs = torch.nn.functional.normalize(torch.tensor([0, 0, -1.0]) + torch.randn(200, 3) * 0.3, dim=-1)
    t_min, t_max = math_utils.get_ray_limits_box(origins, dirs, box_side_length=1.2)
    hit = (t_max > t_min)[:, 0]
    assert hit.sum() > 50
    for t in (t_min, t_max):
        points = origins[hit] + t[hit] * dirs[hit]
        np.testing.assert_allclose(points.abs().max(dim=1).values.numpy(), 0.6, rtol=1e-5)


def test_linspace_matches_torch_linspace():
    start, stop = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 5.0]])
    out = math_utils.linspace(start, stop, 5)
    assert out.shape == (5, 1, 2)
    np.testing.assert_allclose(out[:, 0, 0].numpy(), torch.linspace(1, 3, 5).numpy(), rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1].numpy(), torch.linspace(-2, 5, 5).numpy(), rtol=1e-6)

