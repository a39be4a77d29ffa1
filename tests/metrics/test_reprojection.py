"""Reprojection geometry and the multi-view consistency measure on ground-truth renders with known depth."""

import math

import numpy as np
import pytest
import torch

import camera_utils
from dataset_preprocessing import synthetic_heads
from metrics.reprojection import reproject, view_consistency

RES = 48


def _label(yaw: float, pitch: float) -> torch.Tensor:
    return torch.from_numpy(camera_utils.camera_label(yaw, pitch)[0].numpy())[None]


def test_orbit_turns_the_camera_about_the_pivot():
    c = _label(0.1, 0.05)
    turned = camera_utils.turn_camera_label(c, 0.3, camera_utils.CAMERA_PIVOT)
    pivot = np.array(camera_utils.CAMERA_PIVOT)
    before, after = c[0, :16].view(4, 4).numpy(), turned[0, :16].view(4, 4).numpy()
    rel_before, rel_after = before[:3, 3] - pivot, after[:3, 3] - pivot
    # Same height and distance from the pivot, 0.3 rad further round the vertical axis.
    assert rel_after[1] == pytest.approx(rel_before[1], abs=1e-6)
    assert np.linalg.norm(rel_after) == pytest.approx(np.linalg.norm(rel_before), abs=1e-6)
    angle = math.atan2(rel_after[0], rel_after[2]) - math.atan2(rel_before[0], rel_before[2])
    assert angle == pytest.approx(0.3, abs=1e-6)
    rot_y = np.array([[math.cos(0.3), 0, math.sin(0.3)], [0, 1, 0], [-math.sin(0.3), 0, math.cos(0.3)]])
    np.testing.assert_allclose(after[:3, :3], rot_y @ before[:3, :3], atol=1e-6)
    np.testing.assert_array_equal(turned[:, 16:].numpy(), c[:, 16:].numpy())


def test_same_camera_reprojects_onto_pixel_centres():
    c = _label(0.2, -0.1)
    depth = torch.full((1, 1, 8, 8), 2.5)
    uv, dist = reproject(depth, c, c)
    centres = (torch.arange(8) + 0.5) / 8
    torch.testing.assert_close(uv[0, :, :, 0], centres[None].expand(8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(uv[0, :, :, 1], centres[:, None].expand(8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(dist, torch.full_like(dist, 2.5), atol=1e-5, rtol=0)


@pytest.fixture(scope='module')
def views():
    """Two views (yaw 0.1 and 0.4) of one natural head: images (1, 3, R, R) in [0, 1], depths, cameras."""
    shape, _, _, choice = synthetic_heads.sample_head(0, 3)
    colors = synthetic_heads.pick_colors('natural', choice)
    out = []
    for yaw in (0.1, 0.4):
        label = camera_utils.camera_label(yaw, 0.05)[0].numpy()
        image, depth = synthetic_heads.render_head(shape, label, RES, 'natural', colors)
        out.append((torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255,
                    torch.from_numpy(depth)[None, None], torch.from_numpy(label)[None]))
    return out


def _errors(a, b):
    return {k: float(v) for k, v in view_consistency(*a, *b).items()}


def test_ground_truth_views_are_consistent(views):
    for a, b in (views, views[::-1]):
        errors = _errors(a, b)
        # Residuals come from resampling edges; shading is view-independent (Lambertian).
        assert errors['photo'] < 0.03 and errors['depth'] < 0.01 and errors['visible'] > 0.93, errors


def test_errors_grow_when_one_view_is_perturbed(views):
    (image_a, depth_a, c_a), (image_b, depth_b, c_b) = views
    base = _errors(views[0], views[1])
    shifted = _errors(views[0], (torch.roll(image_b, 2, dims=3), depth_b, c_b))
    assert shifted['photo'] > 3 * base['photo'] and shifted['depth'] == pytest.approx(base['depth'])
    deeper = _errors(views[0], (image_b, depth_b * 1.05, c_b))
    assert deeper['depth'] > 5 * base['depth'] and deeper['visible'] < 0.5
    # A wrong camera for view B (10 degrees of yaw off; the smooth head hides smaller errors at 48 px).
    turned = camera_utils.turn_camera_label(c_b, math.radians(10), camera_utils.CAMERA_PIVOT)
    wrong = _errors(views[0], (image_b, depth_b, turned))
    assert wrong['photo'] > 1.4 * base['photo'] and wrong['depth'] > 1.8 * base['depth']
