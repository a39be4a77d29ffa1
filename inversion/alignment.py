"""Targets for projection: a photo read, cropped and given a camera the way EG3D's data are prepared.

Alignment runs the same face tools as `dataset_tool.py --estimate-cameras` (MediaPipe landmarks,
head pose -> camera label, FFHQ-style crop; dataset_preprocessing.face_pose), an optional extra.
Without alignment, the image must already be an EG3D crop (square, face placed as in the training
data) and its camera must be given.
"""

import dataclasses
import json
import os
from typing import Callable, List, Optional

import numpy as np
import PIL.Image

import camera_utils
from dataset_preprocessing import face_pose
from dataset_preprocessing.face_landmarks import NoFaceFound
from dnnlib.image_io import ImageReadError, read_image

MIN_SIZE = 64  # smaller photos hold too little of a face to project
CAMERA_DIM = camera_utils.CAMERA_LABEL_DIM


class TargetError(ValueError):
    """A target image or camera that cannot be used; the message says what to do."""


@dataclasses.dataclass
class Target:
    image: np.ndarray   # (R, R, 3) uint8: the crop the network sees
    camera: np.ndarray  # (25,) float32 camera label
    notes: List[str]    # what was done that the user should know (largest of several faces, ...)


def read_photo(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a photo; TargetError for unreadable, transparent or too small images.

    Greyscale and 16-bit images are converted by the shared reader (dnnlib.image_io) and projected as
    they are; transparent pixels are refused, since any background put behind them would be projected.
    """
    try:
        image = read_image(path, background=None)
    except ImageReadError as err:
        raise TargetError(str(err)) from err
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIZE:
        raise TargetError(f'image "{path}" is {width}x{height}; projection needs at least {MIN_SIZE}x{MIN_SIZE} '
                          f'pixels of the face')
    return image


def load_camera(path: str, image_name: str) -> np.ndarray:
    """(25,) float32 camera label from a .npy / .json file of 25 numbers, or a dataset.json entry.

    A dataset.json ({"labels": [[name, [25 numbers]], ...]}) must hold `image_name` (its base name
    or its path relative to the file's folder).
    """
    if not os.path.isfile(path):
        raise TargetError(f'camera file "{path}" does not exist')
    try:
        if path.endswith('.npy'):
            label = np.load(path, allow_pickle=False)
        else:
            with open(path, 'r', encoding='utf-8') as f:
                data = json.load(f)
            label = _label_from_json(data, image_name, path)
        label = np.asarray(label, dtype=np.float32).reshape(-1)
    except (OSError, ValueError, TypeError) as err:
        if isinstance(err, TargetError):
            raise
        raise TargetError(f'cannot read camera file "{path}": {err}') from err
    if label.shape != (CAMERA_DIM,):
        raise TargetError(f'camera in "{path}" has {label.size} numbers; a camera label has {CAMERA_DIM}: 16 of the '
                          f'cam2world matrix then 9 of the normalised intrinsics')
    problem = camera_utils.find_degenerate_camera_label(label[None])
    if problem is not None:
        raise TargetError(f'camera in "{path}" is not usable: {problem[1]}')
    return label


def _label_from_json(data, image_name: str, path: str):
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise TargetError(f'"{path}" is neither a list of {CAMERA_DIM} numbers nor a dataset.json '
                          f'{camera_utils.DATASET_JSON_FORMAT}')
    entries = camera_utils.dataset_labels_from_json(data, path) or {}
    base = os.path.basename(image_name)
    for name in (image_name.replace('\\', '/'), base):
        if name in entries:
            return entries[name]
    matches = [name for name in entries if os.path.basename(name) == base]
    if len(matches) == 1:
        return entries[matches[0]]
    raise TargetError(f'"{path}" holds no camera for "{base}" ({len(entries)} entries, e.g. '
                      f'"{next(iter(entries), "none")}")')


def resize_square(image: np.ndarray, resolution: int, path: str) -> np.ndarray:
    """An already cropped (square) image at the network's resolution."""
    height, width = image.shape[:2]
    if height != width:
        raise TargetError(f'image "{path}" is {width}x{height}, not square: without --align the image must be an '
                          f'EG3D-style crop; use --align (needs the face tools) or crop it first')
    if height == resolution:
        return image
    return np.asarray(PIL.Image.fromarray(image).resize((resolution, resolution), PIL.Image.LANCZOS))


def align_photo(image: np.ndarray, resolution: int, detector: Callable) -> Target:
    """Crop and camera of the largest face in `image` (H, W, 3) uint8, as dataset_tool.py --estimate-cameras."""
    counts = []

    def counting_detector(picture: np.ndarray) -> list:
        faces = detector(picture)
        counts.append(len(faces))
        return faces

    try:
        landmarks, pose = face_pose.estimate_pose(image, counting_detector, multiple_faces='largest')
    except NoFaceFound as err:
        raise TargetError('no face found in the image; use a photo with one clearly visible face, or pass '
                          '--no-align --camera=FILE for an EG3D crop') from err
    crop, camera = face_pose.align_face(image, landmarks, pose, resolution)
    notes = [f'{counts[0]} faces found: projecting the largest'] if counts and counts[0] > 1 else []
    return Target(image=crop, camera=camera, notes=notes)


def prepare_target(path: str, resolution: int, align: bool, camera_path: Optional[str],
                   detector_factory: Callable[[], Callable]) -> Target:
    """The crop (resolution, resolution, 3) and camera of one photo.

    align: detect the face, crop it and estimate its camera (a given camera file then overrides the
    estimate). Without align the photo must be a square crop and camera_path must be given.
    detector_factory: returns a face detector (face_landmarks.FaceMeshDetector); called only to align.
    """
    image = read_photo(path)
    camera = None if camera_path is None else load_camera(camera_path, os.path.basename(path))
    if align:
        target = align_photo(image, resolution, detector_factory())
        if camera is not None:
            target.camera = camera
            target.notes.append(f'camera from "{camera_path}" (not the estimated one)')
        return target
    if camera is None:
        raise TargetError('--no-align needs --camera=FILE (25 numbers as .npy / .json, or a dataset.json with '
                          'this image\'s entry)')
    return Target(image=resize_square(image, resolution, path), camera=camera, notes=[])
