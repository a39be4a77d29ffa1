"""Pose accuracy and landmark identity: their geometry here; with MediaPipe (the faces environment) end to end."""

import importlib.util
import math
import os

import numpy as np
import PIL.Image
import pytest

from camera_utils import camera_label
from dataset_preprocessing import face_pose
from dataset_preprocessing.face_landmarks import FaceMeshDetector
from metrics import landmark_metrics
from metrics.metric_options import MetricOptions
from tests.gen_network import build_tiny_generator

PORTRAIT = os.path.join(os.path.dirname(__file__), '..', 'data', 'portraits', 'photos_019706.jpg')


def test_label_yaw_pitch_of_eg3d_cameras():
    yaw, pitch = landmark_metrics.label_yaw_pitch(camera_label(0.3, 0.0))
    assert yaw == pytest.approx(math.degrees(0.3), abs=1e-4) and pitch == pytest.approx(0, abs=1e-4)
    # Elevation of a LookAtPoseSampler camera: arcsin(-2 pitch / pi) (EG3D's polar remapping), below for pitch > 0.
    _, below = landmark_metrics.label_yaw_pitch(camera_label(0.0, 0.2))
    assert below == pytest.approx(math.degrees(math.asin(-0.4 / math.pi)), abs=1e-4)
    # A frontal head pose from the face tools gives the frontal camera.
    assert landmark_metrics.label_yaw_pitch(face_pose.camera_label_from_rotation(np.eye(3))) == pytest.approx(
        (0.0, 0.0), abs=1e-6)


def test_landmark_nme_is_the_shift_over_the_eye_distance():
    rng = np.random.default_rng(1)
    natural = rng.uniform(0, 100, (468, 3))
    natural[33, :2], natural[263, :2] = (30, 40), (70, 40)  # outer eye corners 40 px apart
    assert landmark_metrics.landmark_nme(natural, natural) == 0
    shifted = natural + np.array([3.0, 4.0, 9.0])  # 5 px in the image plane; depth is ignored
    assert landmark_metrics.landmark_nme(natural, shifted) == pytest.approx(5 / 40)


needs_face_tools = pytest.mark.skipif(importlib.util.find_spec('mediapipe') is None,
                                     reason='face tools (requirements-faces.txt) not installed')


@needs_face_tools
def test_landmarks_of_a_photo_and_its_shifted_copy():
    image = np.asarray(PIL.Image.open(PORTRAIT).convert('RGB').resize((256, 256), PIL.Image.LANCZOS))
    shifted = np.pad(image, ((0, 0), (8, 0), (0, 0)), mode='edge')[:, :256]
    detector = FaceMeshDetector(max_faces=1)
    a, b = detector(image)[0], detector(np.ascontiguousarray(shifted))[0]
    eye = np.linalg.norm(a[33, :2] - a[263, :2])
    assert landmark_metrics.landmark_nme(a, b) == pytest.approx(8 / eye, rel=0.3)


@needs_face_tools
def test_pose_accuracy_without_faces_says_so(heads):
    opts = MetricOptions(G=build_tiny_generator(), dataset_kwargs=dict(path=heads['natural']))
    with pytest.raises(ValueError, match='found no face in any of the 1 renders'):
        landmark_metrics.compute_pose_accuracy(opts, num_gen=1)
