"""Projection: the schedule's numbers, the W statistics, W vs W+ latents, the symmetry prior, the network
left alone."""

import math

import pytest
import torch

from inversion.losses import ReconstructionLoss, psnr
from inversion.projection import (ProjectionSchedule, mirror_camera, project, seeded_render, target_loss,
                                  w_plus_spread, w_statistics)
from tests.helpers_inversion import camera, true_latent


def test_schedule_ramps_learning_rate_and_noise():
    s = ProjectionSchedule(num_steps=100, lr=0.1)
    assert s.learning_rate(0) == 0.0                       # ramp up over the first 5 steps
    assert s.learning_rate(2) == pytest.approx(0.1 * 2 / 5)
    assert s.learning_rate(50) == pytest.approx(0.1)       # plateau
    assert s.learning_rate(90) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.4 * math.pi)))  # cosine down
    assert s.noise_scale(0, 2.0) == pytest.approx(2.0 * 0.05)
    assert s.noise_scale(30, 2.0) == pytest.approx(2.0 * 0.05 * (1 - 0.3 / 0.75) ** 2)
    assert s.noise_scale(80, 2.0) == 0.0


def test_w_statistics_are_the_mapping_mean_and_spread(demo_G):
    c = camera(demo_G, 0.0)
    w_avg, w_std = w_statistics(demo_G, c, num_samples=500, seed=3)
    z = torch.randn([500, demo_G.z_dim], generator=torch.Generator().manual_seed(3))
    w = demo_G.mapping(z, c.expand(500, -1))[:, 0]
    assert torch.allclose(w_avg[0, 0], w.mean(0), atol=1e-5)
    assert w_std == pytest.approx(float((w - w.mean(0)).norm(dim=1).square().mean().sqrt()), rel=1e-4)


@pytest.mark.parametrize('space', ['w', 'w_plus'])
def test_projection_latent_shape_and_network_unchanged(demo_G, space):
    c = camera(demo_G, 0.2)
    target = seeded_render(demo_G, true_latent(demo_G, 0), c)
    before = {k: v.clone() for k, v in demo_G.state_dict().items()}
    result = project(demo_G, target, c, ReconstructionLoss(None, lpips_weight=0), latent_space=space,
                     schedule=ProjectionSchedule(num_steps=2, lr=0.02))
    assert result.ws.shape == (1, demo_G.backbone.num_ws, demo_G.w_dim)
    layers_equal = bool((result.ws == result.ws[:, :1]).all())
    assert layers_equal == (space == 'w')  # W broadcasts one w; W+ splits at step 1 of 2
    assert all(torch.equal(v, demo_G.state_dict()[k]) for k, v in before.items())
    assert not any(p.requires_grad for p in demo_G.parameters())


def test_w_plus_spread_is_the_layers_distance_to_their_mean():
    ws = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]]])  # layer mean (2, 1)
    # squared distances 1 + 1, 1 + 1, 0 + 4 -> mean 8 / 3, over w_std^2 = 4
    assert float(w_plus_spread(ws, 2.0)) == pytest.approx(2 / 3)
    assert float(w_plus_spread(ws[:, :1].repeat(1, 3, 1), 2.0)) == 0.0


def test_w_plus_regulariser_keeps_the_layers_together(demo_G):
    c = camera(demo_G, 0.2)
    target = seeded_render(demo_G, true_latent(demo_G, 0), c)
    spreads = {}
    for weight in (0.0, 100.0):
        ws = project(demo_G, target, c, ReconstructionLoss(None, lpips_weight=0), latent_space='w_plus',
                     schedule=ProjectionSchedule(num_steps=4, lr=0.05, w_plus_start=0.25,
                                                 w_plus_spread_weight=weight)).ws
        spreads[weight] = float(w_plus_spread(ws, 1.0))
    assert 0 < spreads[100.0] < 0.5 * spreads[0.0], spreads


def test_projection_refuses_a_target_of_the_wrong_size(demo_G):
    with pytest.raises(ValueError, match=r'target must be \(1, 3, 128, 128\)'):
        project(demo_G, torch.zeros([1, 3, 64, 64]), camera(demo_G, 0.0), ReconstructionLoss(None, lpips_weight=0))
    with pytest.raises(ValueError, match='latent_space'):
        project(demo_G, torch.zeros([1, 3, 128, 128]), camera(demo_G, 0.0), None, latent_space='z')


def test_symmetry_prior_adds_the_mirrored_view_of_a_mirrored_target(demo_G):
    ws, c = true_latent(demo_G, 3), camera(demo_G, 0.45)
    target = torch.rand([1, 3, 128, 128]) * 2 - 1
    mse = ReconstructionLoss(None, lpips_weight=0)
    torch.manual_seed(0)
    plain, image = target_loss(demo_G, ws, c, mirror_camera(c), target, mse, 0.0)
    torch.manual_seed(0)
    with_mirror, image_2 = target_loss(demo_G, ws, c, mirror_camera(c), target, mse, 0.5)
    # The pseudo view is the camera turned to -0.45 rad (xflip of a yaw-only camera) against the flipped target.
    torch.manual_seed(0)
    mirrored = seeded_render(demo_G, ws, camera(demo_G, -0.45))
    expected = float(mse(mirrored, target.flip(-1)))
    assert float(with_mirror - plain) == pytest.approx(0.5 * expected, rel=0.02)
    # The target's view, rendered in a batch of two: the renderer's stratified jitter differs slightly.
    assert float(plain) == pytest.approx(float(mse(image_2, target)), rel=2e-3)


def test_a_demo_head_is_nearly_its_own_mirror_image(demo_G):
    # What the prior assumes: a head seen from the mirrored camera looks like the flipped view.
    ws = true_latent(demo_G, 3)
    view = seeded_render(demo_G, ws, camera(demo_G, 0.45))
    mirror_view = seeded_render(demo_G, ws, camera(demo_G, -0.45))
    assert float(psnr(mirror_view, view.flip(-1))[0]) > 21  # 24.0 dB (hair parting and shading differ)
    assert float(psnr(mirror_view, view)[0]) < 12  # 8.7 dB: not merely similar views
