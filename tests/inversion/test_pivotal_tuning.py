"""Pivotal tuning: what it tunes and what it never touches; the regulariser's cameras."""

import numpy as np
import pytest
import torch

from camera_utils import turn_camera_label
from inversion.pivotal_tuning import TuningSchedule, pivotal_tune, tuned_parameters
from inversion.projection import seeded_render
from training.trainable import dam_parameter_names, is_encoder_parameter
from tests.helpers_inversion import camera, load_demo, true_latent


def test_tuned_parameters_are_eg3d_weights_only(demo_G):
    names = [n for n, _ in tuned_parameters(demo_G)]
    dam = dam_parameter_names(demo_G)
    assert names and not any(n in dam or is_encoder_parameter(n) for n in names)
    assert {n.split('.')[0] for n in names} == {'backbone', 'decoder', 'superresolution'}
    assert not any(n.startswith('backbone.mapping') for n in names)
    # Everything else of synthesis / decoder / super-resolution is tuned.
    eg3d = [n for n, _ in demo_G.named_parameters() if n.split('.')[0] in ('decoder', 'superresolution')
            or n.startswith('backbone.synthesis')]
    assert sorted(names) == sorted(n for n in eg3d if n not in dam)


@pytest.mark.parametrize('yaw', [0.4, -0.3])
def test_turned_camera_circles_the_pivot(demo_G, yaw):
    pivot = np.array(demo_G.rendering_kwargs['avg_camera_pivot'])
    level = camera(demo_G, 0.1, 0.0)  # a level camera at yaw 0.1 looking at the pivot
    turned = turn_camera_label(level, yaw, pivot.tolist())
    before, after = level[0, :16].view(4, 4).numpy(), turned[0, :16].view(4, 4).numpy()
    offset_before, offset_after = before[:3, 3] - pivot, after[:3, 3] - pivot
    assert np.linalg.norm(offset_after) == pytest.approx(np.linalg.norm(offset_before), rel=1e-5)
    turned_by = np.arctan2(offset_after[0], offset_after[2]) - np.arctan2(offset_before[0], offset_before[2])
    assert turned_by == pytest.approx(yaw, abs=1e-5)
    # It looks at the pivot, without roll, from the same height.
    np.testing.assert_allclose(after[:3, 2], -offset_after / np.linalg.norm(offset_after), atol=1e-5)
    assert abs(after[1, 0]) < 1e-6 and offset_after[1] == pytest.approx(offset_before[1], abs=1e-6)
    assert np.allclose(after[:3, :3] @ after[:3, :3].T, np.eye(3), atol=1e-5)
    assert torch.equal(turned[:, 16:], level[:, 16:])


def test_tuning_changes_eg3d_weights_and_keeps_the_domain_path():
    G = load_demo()
    c = camera(G, 0.3)
    ws = true_latent(G, 2)
    target = seeded_render(G, true_latent(G, 4), c)  # another head: tuning has something to do
    before = {k: v.clone() for k, v in G.state_dict().items()}
    result = pivotal_tune(G, ws, target, c, None, seed=0,
                          schedule=TuningSchedule(num_steps=2, lr=1e-3, lpips_weight=0, locality_weight_lpips=0,
                                                  locality_bank=1))
    after = G.state_dict()
    tuned = {n for n, _ in tuned_parameters(G)}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= tuned
    dam = dam_parameter_names(G)
    for key in before:
        if key in dam or is_encoder_parameter(key) or key.startswith('backbone.mapping') \
                or key == 'domain_codes':
            assert torch.equal(before[key], after[key]), key
    assert result.num_parameters == sum(p.numel() for _, p in tuned_parameters(G))
    assert not any(p.requires_grad for p in G.parameters()) and not G.training
