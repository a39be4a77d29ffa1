"""Targets: reading photos through the shared reader, camera files, crops; alignment with the face tools."""

import json
import os

import numpy as np
import PIL.Image
import pytest

from dataset_preprocessing import face_pose
from dataset_preprocessing.face_landmarks import FaceMeshDetector
from dataset_preprocessing.face_pose import camera_label_from_rotation
from inversion import alignment

PORTRAITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'portraits')
try:
    import mediapipe  # noqa: F401  pylint: disable=unused-import
    HAVE_MEDIAPIPE = True
except ImportError:
    HAVE_MEDIAPIPE = False
needs_mediapipe = pytest.mark.skipif(not HAVE_MEDIAPIPE, reason='optional face tools not installed: '
                                     'pip install -r requirements-faces.txt')
FRONTAL = camera_label_from_rotation(np.eye(3))


def save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    PIL.Image.fromarray(array, mode).save(path)
    return str(path)


def test_read_photo_errors_and_conversions(tmp_path):
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(alignment.TargetError, match='cannot read image'):
        alignment.read_photo(str(tmp_path / 'notes.png'))
    with pytest.raises(alignment.TargetError, match='is 40x80; projection needs at least 64x64'):
        alignment.read_photo(save(tmp_path, 'small.png', np.zeros((80, 40, 3), np.uint8)))
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 128
    with pytest.raises(alignment.TargetError, match='transparent pixels'):
        alignment.read_photo(save(tmp_path, 'alpha.png', rgba))
    grey = alignment.read_photo(save(tmp_path, 'grey.png', np.full((64, 64), 200, np.uint8)))
    assert grey.shape == (64, 64, 3) and (grey == 200).all()
    sixteen = tmp_path / 'deep.png'
    PIL.Image.fromarray(np.full((64, 64), 257 * 100, np.uint16)).save(sixteen)
    assert (alignment.read_photo(str(sixteen)) == 100).all()


def test_camera_files(tmp_path):
    np.save(tmp_path / 'cam.npy', FRONTAL)
    np.testing.assert_array_equal(alignment.load_camera(str(tmp_path / 'cam.npy'), 'x.png'), FRONTAL)
    (tmp_path / 'cam.json').write_text(json.dumps(FRONTAL.tolist()))
    np.testing.assert_allclose(alignment.load_camera(str(tmp_path / 'cam.json'), 'x.png'), FRONTAL)
    other = FRONTAL.copy()
    other[3] = 0.5  # x of the camera position
    dataset = {'labels': [['00000/img00000000.png', FRONTAL.tolist()], ['00000/me.png', other.tolist()]]}
    (tmp_path / 'dataset.json').write_text(json.dumps(dataset))
    np.testing.assert_allclose(alignment.load_camera(str(tmp_path / 'dataset.json'), 'me.png'), other)
    with pytest.raises(alignment.TargetError, match='holds no camera for "you.png"'):
        alignment.load_camera(str(tmp_path / 'dataset.json'), 'you.png')
    np.save(tmp_path / 'short.npy', FRONTAL[:16])
    with pytest.raises(alignment.TargetError, match='has 16 numbers; a camera label has 25'):
        alignment.load_camera(str(tmp_path / 'short.npy'), 'x.png')
    degenerate = FRONTAL.copy()
    degenerate[:3] = 0
    np.save(tmp_path / 'flat.npy', degenerate)
    with pytest.raises(alignment.TargetError, match='not usable: .*rotation'):
        alignment.load_camera(str(tmp_path / 'flat.npy'), 'x.png')
    with pytest.raises(alignment.TargetError, match='does not exist'):
        alignment.load_camera(str(tmp_path / 'none.npy'), 'x.png')


def test_unaligned_target_needs_a_square_crop_and_a_camera(tmp_path):
    np.save(tmp_path / 'cam.npy', FRONTAL)
    square = save(tmp_path, 'crop.png', np.full((256, 256, 3), 90, np.uint8))
    target = alignment.prepare_target(square, 128, False, str(tmp_path / 'cam.npy'), detector_factory=None)
    assert target.image.shape == (128, 128, 3) and (target.image == 90).all()
    with pytest.raises(alignment.TargetError, match='--no-align needs --camera'):
        alignment.prepare_target(square, 128, False, None, detector_factory=None)
    wide = save(tmp_path, 'wide.png', np.zeros((100, 200, 3), np.uint8))
    with pytest.raises(alignment.TargetError, match='not square'):
        alignment.prepare_target(wide, 128, False, str(tmp_path / 'cam.npy'), detector_factory=None)


def test_alignment_reports_no_face_and_the_largest_of_several():
    calls = []

    def detector(image):
        calls.append(image.shape)
        return []

    with pytest.raises(alignment.TargetError, match='no face found'):
        alignment.align_photo(np.zeros((64, 64, 3), np.uint8), 64, detector)


@needs_mediapipe
def test_alignment_of_a_real_photo_matches_dataset_tool(tmp_path):

    path = os.path.join(PORTRAITS, 'photos_006750.jpg')
    detector = FaceMeshDetector()
    target = alignment.prepare_target(path, 128, True, None, lambda: detector)
    image = np.asarray(PIL.Image.open(path).convert('RGB'))
    landmarks, pose = face_pose.estimate_pose(image, detector, multiple_faces='largest')
    crop, label = face_pose.align_face(image, landmarks, pose, 128)
    np.testing.assert_array_equal(target.image, crop)
    np.testing.assert_allclose(target.camera, label, atol=1e-6)
    assert target.notes == []
    # Two portraits side by side: the larger face is projected, and the user is told.
    small = np.asarray(PIL.Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2)))
    pair = np.zeros_like(image, shape=(image.shape[0], image.shape[1] + small.shape[1], 3))
    pair[:, :image.shape[1]] = image
    pair[:small.shape[0], image.shape[1]:] = small
    two = alignment.prepare_target(save(tmp_path, 'two.png', pair), 128, True, None, lambda: detector)
    assert two.notes == ['2 faces found: projecting the largest']
    # Landmarks are found on a downscaled copy, so the wider picture moves them slightly.
    np.testing.assert_allclose(two.camera, label, atol=0.1)
