"""Cameras: EG3D's camera labels (tests/fixtures/eg3d/cameras.npz) and the geometry they promise."""

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from camera_utils import (CAMERA_PIVOT, CAMERA_RADIUS, FOV_DEG, FOV_to_intrinsics, GaussianCameraPoseSampler,
                          LookAtPoseSampler, UniformCameraPoseSampler, camera_label, check_camera_label,
                          checked_camera_labels, create_cam2world_matrix, find_degenerate_camera_label,
                          read_dataset_labels, xflip_camera_label)

FIXTURES = Path(__file__).parent / 'fixtures' / 'eg3d'


@pytest.fixture(scope='module')
def cams():
    return np.load(FIXTURES / 'cameras.npz', allow_pickle=False)


def test_labels_match_eg3d(cams):
    """camera_label(yaw, pitch) is EG3D's gen_samples label: LookAtPoseSampler at pi/2 + yaw, pi/2 + pitch."""
    for i, (yaw, pitch) in enumerate(zip(cams['yaws'], cams['pitches'])):
        label = camera_label(float(yaw), float(pitch), float(cams['fov_degrees']), radius=float(cams['radius']),
                             pivot=cams['pivot'].tolist())
        np.testing.assert_allclose(label[0].numpy(), cams['c'][i], atol=1e-5, rtol=1e-5)


def test_default_camera_is_eg3ds_ffhq_camera(cams):
    np.testing.assert_allclose(camera_label(0.0, 0.0, float(cams['fov_degrees']), float(cams['radius']),
                                            cams['pivot'].tolist()).numpy(),
                               camera_label(fov_deg=FOV_DEG).numpy(), atol=1e-7)
    assert (FOV_DEG, CAMERA_RADIUS, CAMERA_PIVOT) == (18.837, 2.7, (0.0, 0.0, 0.2))


def test_intrinsics_match_eg3d(cams):
    np.testing.assert_allclose(FOV_to_intrinsics(18.837).numpy(), cams['intrinsics_18_837'], rtol=1e-6)
    np.testing.assert_allclose(FOV_to_intrinsics(12).numpy(), cams['intrinsics_12'], rtol=1e-6)


def test_frontal_pose_is_opencv_looking_at_target():
    pivot = torch.tensor([0, 0, 0.2])
    pose = LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, pivot, radius=2.7)[0]
    # Camera on the +z axis at distance 2.7 from the world origin (not the pivot); image x = world +x,
    # image y (down) = world -y, forward = world -z (towards the face).
    np.testing.assert_allclose(pose[:3, 3].numpy(), [0, 0, 2.7], atol=1e-6)
    np.testing.assert_allclose(pose[:3, :3].numpy(), [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-6)
    np.testing.assert_allclose(pose[3].numpy(), [0, 0, 0, 1])


def test_samplers_are_rotations_on_the_sphere():
    torch.manual_seed(0)
    for poses in [GaussianCameraPoseSampler.sample(math.pi / 2, math.pi / 2, 0.3, 0.2, radius=1.5, batch_size=8),
                  UniformCameraPoseSampler.sample(math.pi / 2, math.pi / 2, 0.5, 0.4, radius=1.5, batch_size=8)]:
        rot, origin = poses[:, :3, :3], poses[:, :3, 3]
        np.testing.assert_allclose((rot.transpose(1, 2) @ rot).numpy(), np.tile(np.eye(3), (8, 1, 1)), atol=1e-5)
        np.testing.assert_allclose(torch.det(rot).numpy(), np.ones(8), atol=1e-5)
        np.testing.assert_allclose(origin.norm(dim=1).numpy(), np.full(8, 1.5), rtol=1e-5)
        # Looking at the origin: the forward axis points from the camera to (0, 0, 0).
        np.testing.assert_allclose(rot[:, :, 2].numpy(), (-origin / 1.5).numpy(), atol=1e-5)
        assert torch.all(rot[:, 1, 0].abs() < 1e-6)  # no roll: the x axis stays horizontal


def test_uniform_sampler_stays_in_range():
    torch.manual_seed(1)
    poses = UniformCameraPoseSampler.sample(math.pi / 2, math.pi / 2, horizontal_stddev=0.3, radius=1, batch_size=64)
    yaw = torch.atan2(poses[:, 0, 3], poses[:, 2, 3])  # azimuth of the camera around +y
    assert yaw.abs().max() <= 0.3 + 1e-5
    np.testing.assert_allclose(poses[:, 1, 3].numpy(), np.zeros(64), atol=1e-6)


def test_zero_stddev_still_consumes_eg3d_random_draws():
    torch.manual_seed(3)
    GaussianCameraPoseSampler.sample(1.0, 1.2, batch_size=2)
    after = torch.rand(1)
    torch.manual_seed(3)
    torch.randn(2, 1), torch.randn(2, 1)
    np.testing.assert_array_equal(after.numpy(), torch.rand(1).numpy())


def test_bad_input():
    with pytest.raises(ValueError, match=r'\(N, 3\)'):
        create_cam2world_matrix(torch.ones(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match='fov_degrees'):
        FOV_to_intrinsics(0)
    with pytest.raises(ValueError, match='lookat_position'):
        LookAtPoseSampler.sample(1, 1, torch.zeros(2))
    with pytest.raises(ValueError, match='batch_size'):
        UniformCameraPoseSampler.sample(1, 1, batch_size=0)


def _frontal_label() -> torch.Tensor:
    return camera_label()[0]


@pytest.mark.parametrize('edit, reason', [
    (lambda c: c.zero_(), 'its rotation'),                                        # all-zero label
    (lambda c: c[:3].mul_(2), r'its rotation .*max \|R\^T R - I\| = 3'),          # scaled first row
    (lambda c: c[0:9:4].neg_(), r'its rotation .*det = -1'),                      # a mirror, not a rotation
    (lambda c: c.__setitem__(16, 0), r'focal length must be > 0 \(fx = c\[16\] = 0'),
    (lambda c: c.__setitem__(20, -4.26), r'focal length must be > 0 .*fy = c\[20\] = -4.26'),
    (lambda c: c[3:12:4].zero_(), 'the camera sits inside the rendered volume, 0 from the world origin'),
    (lambda c: c[3:12:4].copy_(torch.tensor([0, 0, 0.2])), r'inside the rendered volume, 0\.2 from'),  # at EG3D's pivot
])
def test_degenerate_labels_are_refused_with_the_row(edit, reason):
    c = _frontal_label().repeat(3, 1)
    assert find_degenerate_camera_label(c) is None
    check_camera_label(c, 3)
    bad = c[2].clone()
    edit(bad)
    c[2] = bad
    row, message = find_degenerate_camera_label(c)
    assert row == 2 and re.search(reason, message), message
    with pytest.raises(ValueError, match=r'camera label c\[2\] is not a usable camera: .*' + reason):
        check_camera_label(c)
    check_camera_label(c, conditioning_only=True)  # a mapping-network condition need not be a camera
    with pytest.raises(ValueError, match=r'the label of "b.png" is not a usable camera'):
        checked_camera_labels({'a.png': c[0].tolist(), 'b.png': c[2].numpy()}, 'labels.json')


def test_eg3d_labels_pass_and_mirror_stays_a_camera(cams):
    labels = np.asarray(cams['c'], dtype=np.float32)
    assert find_degenerate_camera_label(labels) is None
    assert find_degenerate_camera_label(xflip_camera_label(labels)) is None
    rows = checked_camera_labels({f'{i}.png': label.tolist() for i, label in enumerate(labels)}, 'x')
    np.testing.assert_array_equal(np.stack(list(rows.values())), labels)


def test_read_dataset_labels():
    good = io.BytesIO(json.dumps({'labels': [['sub\\a.png', [1] * 25], ['b.png', 3]]}).encode())
    assert read_dataset_labels(good, 'd.json') == {'sub/a.png': [1] * 25, 'b.png': 3}
    assert read_dataset_labels(io.StringIO('{"labels": null}'), 'd.json') is None
    for text in ('{"labels": [["a.png"]]}', '[1, 2]', '{"label": []}', '{"labels": [[3, [1]]]}', 'not json'):
        with pytest.raises(ValueError, match=r'^d.json must be \{"labels": \[\["<image path>", \[25 numbers\]\]'):
            read_dataset_labels(io.StringIO(text), 'd.json')
