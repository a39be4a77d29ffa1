"""Landmark geometry -> head pose, EG3D camera labels and crops (no face detector needed)."""

import math
import os

import numpy as np
import pytest

from camera_utils import xflip_camera_label
from dataset_preprocessing import face_pose
from dataset_preprocessing.face_landmarks import MultipleFacesFound, NoFaceFound

CAMERAS = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'eg3d', 'cameras.npz')
F = np.diag([1.0, -1.0, -1.0])


def _rotation_of_label(label):
    """Head axes in camera axes that `camera_label_from_rotation` maps to this label's rotation."""
    return label[:16].reshape(4, 4)[:3, :3].T @ F


def test_label_from_rotation_matches_eg3d_cameras():
    cams = np.load(CAMERAS)
    for label, yaw, pitch in zip(cams['c'], cams['yaws'], cams['pitches']):
        rotation = _rotation_of_label(label.astype(np.float64))
        np.testing.assert_allclose(face_pose.camera_label_from_rotation(rotation), label, atol=2e-6)
        pose = face_pose._pose_from_rotation(rotation)
        assert pose.yaw == pytest.approx(yaw, abs=1e-5) and pose.pitch == pytest.approx(pitch, abs=1e-5)
        assert pose.roll == pytest.approx(0, abs=1e-6)


def _symmetric_face(rng):
    """468 landmarks of a left-right symmetric head in its own frame (x right, y down, z back)."""
    points = rng.normal(size=(468, 3)) * 50
    for left, right in face_pose._PAIRS:
        points[right] = points[left] * [-1, 1, 1]
    points[[face_pose._FOREHEAD, face_pose._CHIN]] = [[0, -80, 5], [0, 90, -10]]
    return points


def _rotation(yaw, pitch, roll):
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def test_head_rotation_recovers_a_known_rotation_and_mirrors():
    rng = np.random.default_rng(0)
    face = _symmetric_face(rng)
    # The frame spanned by the pairs and forehead->chin, before the fixed level tilt.
    frame_y = face[face_pose._CHIN] - face[face_pose._FOREHEAD]
    frame_y /= np.linalg.norm(frame_y)
    frame = np.stack([[1, 0, 0], frame_y, np.cross([1, 0, 0], frame_y)], axis=1)
    rotation = _rotation(0.4, -0.2, 0.1)
    landmarks = face @ rotation.T + [300, 250, 0]
    expected = rotation @ frame @ face_pose._LEVEL_HEAD
    np.testing.assert_allclose(face_pose.head_rotation(landmarks), expected, atol=1e-12)

    # Mirror the image: x -> width - x, and the mesh's left/right landmark indices swap roles.
    mirrored = landmarks * [-1, 1, 1] + [640, 0, 0]
    swap = np.arange(468)
    swap[face_pose._PAIRS[:, 0]], swap[face_pose._PAIRS[:, 1]] = face_pose._PAIRS[:, 1], face_pose._PAIRS[:, 0]
    pose, mirror_pose = face_pose.pose_from_landmarks(landmarks), face_pose.pose_from_landmarks(mirrored[swap])
    assert mirror_pose.yaw == pytest.approx(-pose.yaw, abs=1e-9)
    assert mirror_pose.pitch == pytest.approx(pose.pitch, abs=1e-9)
    assert mirror_pose.roll == pytest.approx(-pose.roll, abs=1e-9) and abs(pose.roll) > 0.05
    np.testing.assert_allclose(face_pose.camera_label_from_rotation(mirror_pose.rotation),
                               xflip_camera_label(face_pose.camera_label_from_rotation(pose.rotation)), atol=1e-6)
    with pytest.raises(ValueError, match=r'\(468, 3\)'):
        face_pose.head_rotation(landmarks[:, :2])


def test_crop_box_follows_ffhq():
    landmarks = np.zeros((468, 3))
    for (a, b), x in zip((face_pose._RIGHT_EYE, face_pose._LEFT_EYE), (400, 600)):
        landmarks[[a, b]] = [x, 500, 0]
    landmarks[list(face_pose._MOUTH)] = [500, 620, 0]
    # centre = eye midpoint + 0.1 * eye-to-mouth; side = 2 * max(2 * 200, 1.8 * 120).
    assert face_pose.crop_box(landmarks) == pytest.approx((500, 512, 800))
    landmarks[list(face_pose._MOUTH)] = [500, 800, 0]
    assert face_pose.crop_box(landmarks) == pytest.approx((500, 530, 2 * 1.8 * 300))


def test_crop_image_repeats_border_pixels():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_array_equal(face_pose.crop_image(image, (2, 2, 4), 4), image)
    shifted = face_pose.crop_image(image, (1, 1, 4), 4)  # one pixel off the top-left corner
    np.testing.assert_array_equal(shifted[1:, 1:], image[:3, :3])
    np.testing.assert_array_equal(shifted[0, 1:], image[0, :3])
    assert face_pose.crop_image(image, (2, 2, 4), 8).shape == (8, 8, 3)


def test_select_face_policies():
    small, large = np.zeros((468, 3)), np.ones((468, 3))
    with pytest.raises(NoFaceFound, match='no face'):
        face_pose.select_face([])
    with pytest.raises(MultipleFacesFound, match='2 faces found.*largest'):
        face_pose.select_face([large, small])
    assert face_pose.select_face([large, small], multiple_faces='largest') is large
    with pytest.raises(ValueError, match='multiple_faces'):
        face_pose.select_face([large], multiple_faces='first')
