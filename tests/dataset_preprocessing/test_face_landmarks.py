"""Face detection and pose on the shared portraits (needs the optional extra: requirements-faces.txt)."""

import glob
import importlib.util
import os

import numpy as np
import PIL.Image
import pytest

from dataset_preprocessing import face_landmarks, face_pose

PORTRAITS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), '..', 'data', 'portraits', '*.jpg')))
HAVE_MEDIAPIPE = importlib.util.find_spec('mediapipe') is not None
needs_mediapipe = pytest.mark.skipif(not HAVE_MEDIAPIPE, reason='optional face tools not installed: '
                                     'pip install -r requirements-faces.txt (see docs/datasets.md)')


@pytest.fixture(scope='module')
def detector():
    detector = face_landmarks.FaceMeshDetector()
    yield detector
    detector.close()


def _load(path):
    return np.asarray(PIL.Image.open(path).convert('RGB'))


@pytest.mark.skipif(HAVE_MEDIAPIPE, reason='checks the message shown when mediapipe is missing')
def test_missing_extra_says_what_to_install():
    with pytest.raises(face_landmarks.FaceToolsMissing, match='pip install -r requirements-faces.txt'):
        face_landmarks.FaceMeshDetector()


@needs_mediapipe
def test_one_face_in_each_portrait_and_mirrored_yaw(detector):
    assert len(PORTRAITS) == 10
    raw_mismatch = []
    for path in PORTRAITS:
        image = _load(path)
        faces, mirrored_faces = detector(image), detector(np.ascontiguousarray(image[:, ::-1]))
        assert len(faces) == 1 and len(mirrored_faces) == 1, path
        assert faces[0].shape == (468, 3)
        # FFHQ-aligned 1024 px portraits: the face is near the centre and the crop is about the image.
        cx, cy, side = face_pose.crop_box(faces[0])
        if 'unsplash' not in path:
            assert abs(cx - 512) < 30 and abs(cy - 512) < 30 and 900 < side < 1150, (path, cx, cy, side)
        yaw = face_pose.pose_from_landmarks(faces[0]).yaw
        raw_mismatch.append(abs(yaw + face_pose.pose_from_landmarks(mirrored_faces[0]).yaw))

        # The default estimate averages the image and its mirror: mirrored poses are exact.
        _, pose = face_pose.estimate_pose(image, detector)
        _, mirror_pose = face_pose.estimate_pose(np.ascontiguousarray(image[:, ::-1]), detector)
        assert mirror_pose.yaw == pytest.approx(-pose.yaw, abs=1e-6)
        assert mirror_pose.pitch == pytest.approx(pose.pitch, abs=1e-6)
        assert abs(pose.yaw - yaw) < np.radians(3)
    # The mesh alone: within 3 degrees for every portrait (measured: 1.2 mean, 2.6 max).
    assert max(raw_mismatch) < np.radians(3) and np.mean(raw_mismatch) < np.radians(1.5)


@needs_mediapipe
def test_yaw_sign_follows_the_nose(detector):
    # EG3D: yaw > 0 puts the camera on the +x side, from where the nose (+z) points to image left.
    turned = 0
    for path in PORTRAITS:
        landmarks = detector(_load(path))[0]
        nose_offset = landmarks[1, 0] - (landmarks[234, 0] + landmarks[454, 0]) / 2  # tip vs cheek midpoint
        if abs(nose_offset) > 40:
            turned += 1
            assert np.sign(face_pose.pose_from_landmarks(landmarks).yaw) == -np.sign(nose_offset), path
    assert turned >= 3


@needs_mediapipe
def test_no_face_and_several_faces(detector):
    blank = np.full((256, 256, 3), 128, dtype=np.uint8)
    assert detector(blank) == []
    with pytest.raises(face_landmarks.NoFaceFound):
        face_pose.estimate_pose(blank, detector)

    small = PIL.Image.open(PORTRAITS[6]).convert('RGB').resize((400, 400))
    large = PIL.Image.open(PORTRAITS[7]).convert('RGB').resize((600, 600))
    pair = PIL.Image.new('RGB', (1000, 1000), (128, 128, 128))
    pair.paste(small, (0, 300))
    pair.paste(large, (400, 200))
    faces = detector(np.asarray(pair))
    assert len(faces) == 2 and faces[0][:, 0].mean() > 400 > faces[1][:, 0].mean()  # largest first
    with pytest.raises(face_landmarks.MultipleFacesFound, match='2 faces'):
        face_pose.estimate_pose(np.asarray(pair), detector)
    landmarks, _ = face_pose.estimate_pose(np.asarray(pair), detector, multiple_faces='largest')
    assert landmarks[:, 0].mean() > 400
