"""MipRayMarcher2 against closed-form alpha compositing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.volumetric_rendering.ray_marcher import MipRayMarcher2

OPTIONS = {'clamp_mode': 'softplus'}


def test_constant_density_matches_beer_lambert():
    depths = torch.linspace(2.0, 3.0, 11).reshape(1, 1, 11, 1)
    raw = 1.7
    colors = torch.full((1, 1, 11, 3), 0.25)
    rgb, depth, weights = MipRayMarcher2()(colors, torch.full((1, 1, 11, 1), raw), depths, OPTIONS)
    sigma, delta = F.softplus(torch.tensor(raw - 1.0)).item(), 0.1
    alpha = 1 - np.exp(-sigma * delta)
    expected = alpha * (1 - alpha + 1e-10) ** np.arange(10)  # w_i = alpha * T_i
    np.testing.assert_allclose(weights[0, 0, :, 0].numpy(), expected, rtol=1e-5)
    total = expected.sum()
    assert total <= 1
    np.testing.assert_allclose(rgb[0, 0].numpy(), (0.25 * total) * 2 - 1, rtol=1e-5)  # scaled to [-1, 1]
    mids = (depths[0, 0, 1:, 0] + depths[0, 0, :-1, 0]).numpy() / 2
    np.testing.assert_allclose(depth[0, 0, 0].item(), (expected * mids).sum() / total, rtol=1e-6)


def test_weights_sum_at_most_one_and_depth_in_range():
    torch.manual_seed(0)
    depths = torch.sort(torch.rand(2, 7, 9, 1) + 2, dim=2).values
    densities = torch.randn(2, 7, 9, 1) * 5
    densities[0, 0] = -1e4  # an empty ray: depth is NaN before the clamp, then the far end
    rgb, depth, weights = MipRayMarcher2()(torch.rand(2, 7, 9, 4), densities, depths, OPTIONS)
    assert torch.all(weights >= 0) and torch.all(weights.sum(2) <= 1 + 1e-6)
    assert torch.all(depth >= depths.min()) and torch.all(depth <= depths.max())
    assert depth[0, 0, 0] == depths.max()
    assert torch.all(rgb >= -1) and torch.all(rgb <= 1)


def test_white_background_fills_the_transmittance():
    depths = torch.linspace(2, 3, 5).reshape(1, 1, 5, 1)
    colors, densities = torch.zeros(1, 1, 5, 3), torch.zeros(1, 1, 5, 1)
    rgb, _, weights = MipRayMarcher2()(colors, densities, depths, dict(OPTIONS, white_back=True))
    np.testing.assert_allclose(rgb.numpy(), (1 - weights.sum().item()) * 2 - 1, rtol=1e-6)


def test_unclamped_depth_is_left_to_the_caller():
    depths = torch.linspace(2, 3, 5).reshape(1, 1, 5, 1)
    _, depth, _ = MipRayMarcher2()(torch.zeros(1, 1, 5, 3), torch.full((1, 1, 5, 1), -1e4), depths, OPTIONS,
                                   clamp_depth=False)
    assert torch.isnan(depth).all()


def test_only_softplus():
    x = torch.zeros(1, 1, 3, 1)
    with pytest.raises(ValueError, match="clamp_mode='softplus'"):
        MipRayMarcher2()(x, x, x, {'clamp_mode': 'relu'})
