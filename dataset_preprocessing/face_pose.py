"""Head pose -> EG3D camera label, and EG3D/FFHQ-style crops, from 468 MediaPipe face-mesh landmarks.

Pose. The head's axes in camera coordinates come straight from the mesh's 3-D landmarks: x from
the average of 7 left/right landmark pairs (eye corners and lids, brows, mouth corners), y from
forehead to chin made orthogonal to x, z = x cross y, then tilted by a fixed calibration angle
about x (`_LEVEL_TILT`). The mesh is not exactly mirror-symmetric (on the shared portraits the yaw
of a mirrored image differs from minus the original's by 1.2 degrees on average, 2.6 at most), so
`estimate_pose` by default also reads the mirrored image and averages the two rotations: mirrored
images then get exactly mirrored poses (yaw and roll negated).

Camera. The head frame maps to EG3D's world (y up, face looking along +z) by F = diag(1, -1, -1);
the camera sits 2.7 from the origin with its optical axis through the pivot (0, 0, 0.2), as EG3D's
FFHQ cameras, with intrinsics of FOV 18.837 degrees. Roll stays in the label, as in EG3D's FFHQ
labels, because the crop does not rotate the image.

Crop (the idea of EG3D's FFHQ preprocessing: a similarity without rotation that puts the face at a
fixed position and scale): centre = eye midpoint + 0.1 x (eye-to-mouth vector), as in FFHQ's
alignment; side = CROP_SCALE x 2 x max(2 |eye-to-eye|, 1.8 |eye-to-mouth|) with 3-D lengths so that
turning the head does not shrink the crop. Outside the image the border pixels are repeated.
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np
import PIL.Image
import torch

import camera_utils
from dataset_preprocessing.face_landmarks import MultipleFacesFound, NoFaceFound

POSE_PIVOT = np.array(camera_utils.CAMERA_PIVOT)
CROP_SCALE = 1.0

# MediaPipe face-mesh indices of (image-left, image-right) pairs of a frontal face. Eye corners and lids, brows,
# mouth corners: on the 10 shared portraits these gave the most mirror-consistent yaw (the jaw-line points are the
# least stable on stylised faces).
_PAIRS = np.array([(33, 263), (133, 362), (159, 386), (145, 374), (70, 300), (105, 334), (61, 291)])
_FOREHEAD, _CHIN = 10, 152
_RIGHT_EYE, _LEFT_EYE, _MOUTH = (33, 133), (263, 362), (61, 291)
# Head frame -> EG3D world: the head's y (down) and z (towards the back of the head) flip.
_HEAD_TO_WORLD = np.diag([1.0, -1.0, -1.0])
_MIRROR = np.diag([-1.0, 1.0, 1.0])
# The forehead-to-chin line leans back from the head's vertical axis; this tilt about the head's
# x axis is calibrated so that the five FFHQ photos of tests/data/portraits average a level camera
# (EG3D's frontal view). It commutes with mirroring, so mirrored poses stay exact.
_LEVEL_TILT = np.radians(-8.83)
_LEVEL_HEAD = np.array([[1.0, 0.0, 0.0],
                        [0.0, np.cos(_LEVEL_TILT), -np.sin(_LEVEL_TILT)],
                        [0.0, np.sin(_LEVEL_TILT), np.cos(_LEVEL_TILT)]])


@dataclasses.dataclass
class FacePose:
    """Pose of one face. rotation (3, 3): head axes (columns x right, y down, z back) in camera axes.

    yaw, pitch: the camera as `LookAtPoseSampler.sample(pi/2 + yaw, pi/2 + pitch, (0, 0, 0.2), radius=2.7)`
    places it (the label equals that camera rolled by `roll`): yaw > 0 puts the camera on the +x side
    (the face's left), pitch > 0 below the face, both radians, as in EG3D's samplers and `cameras.npz`.
    roll: rotation (radians) about the optical axis from that look-at camera to the label's camera.
    """
    rotation: np.ndarray
    yaw: float
    pitch: float
    roll: float


def head_rotation(landmarks: np.ndarray) -> np.ndarray:
    """Head axes (3, 3) in camera axes (columns x, y, z) from 468 landmarks (468, 3) in pixels."""
    if landmarks.ndim != 2 or landmarks.shape[0] < 468 or landmarks.shape[1] != 3:
        raise ValueError(f'landmarks must be (468, 3) MediaPipe face-mesh points, got {landmarks.shape}')
    x = np.mean(landmarks[_PAIRS[:, 1]] - landmarks[_PAIRS[:, 0]], axis=0)
    x /= np.linalg.norm(x)
    y = landmarks[_CHIN] - landmarks[_FOREHEAD]
    y -= (y @ x) * x
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)], axis=1) @ _LEVEL_HEAD


def camera_label_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """(25,) float32 EG3D label of the camera seeing the head with `rotation` (head axes in camera axes)."""
    cam2world = np.eye(4)
    cam2world[:3, :3] = _HEAD_TO_WORLD @ rotation.T
    forward = cam2world[:3, 2]
    # Camera at o = pivot - s * forward with |o| = radius: the optical axis passes through the pivot.
    b = POSE_PIVOT @ forward
    s = b + np.sqrt(b * b - POSE_PIVOT @ POSE_PIVOT + camera_utils.CAMERA_RADIUS ** 2)
    cam2world[:3, 3] = POSE_PIVOT - s * forward
    intrinsics = camera_utils.FOV_to_intrinsics(camera_utils.FOV_DEG).numpy()
    return np.concatenate([cam2world.reshape(16), intrinsics.reshape(9)]).astype(np.float32)


def pose_from_landmarks(landmarks: np.ndarray) -> FacePose:
    """FacePose of one face from its 468 landmarks (468, 3) in pixels."""
    return _pose_from_rotation(head_rotation(landmarks))


def _pose_from_rotation(rotation: np.ndarray) -> FacePose:
    cam2world = camera_label_from_rotation(rotation)[:16].reshape(4, 4).astype(np.float64)
    origin = cam2world[:3, 3]
    # Roll: the angle from the look-at camera (x axis horizontal) to this one, about the optical axis.
    level = camera_utils.create_cam2world_matrix(torch.tensor(cam2world[None, :3, 2], dtype=torch.float32),
                                                 torch.tensor(origin[None], dtype=torch.float32))[0].numpy()
    right = cam2world[:3, 0]
    roll = np.arctan2(right @ level[:3, 1], right @ level[:3, 0])
    # LookAtPoseSampler puts the camera at height radius * cos(arccos(-2 pitch / pi)) (EG3D's polar remap).
    return FacePose(rotation, yaw=float(np.arctan2(origin[0], origin[2])),
                    pitch=float(-np.pi / 2 * origin[1] / camera_utils.CAMERA_RADIUS), roll=float(roll))


def _mirror_rotation(rotation: np.ndarray) -> np.ndarray:
    """The rotation seen in the left-right mirrored image: S R S with S = diag(-1, 1, 1)."""
    return _MIRROR @ rotation @ _MIRROR


def select_face(faces: list, multiple_faces: str = 'error') -> np.ndarray:
    """The one face to use from a detector's list (largest first).

    No face: NoFaceFound. Several: 'error' raises MultipleFacesFound, 'largest' takes the first.
    """
    if multiple_faces not in ('error', 'largest'):
        raise ValueError(f"multiple_faces must be 'error' or 'largest', got {multiple_faces!r}")
    if not faces:
        raise NoFaceFound('no face found')
    if len(faces) > 1 and multiple_faces == 'error':
        raise MultipleFacesFound(f'{len(faces)} faces found; expected one (use multiple_faces="largest" '
                                 f'/ --multiple-faces=largest to keep the largest)')
    return faces[0]


def estimate_pose(image: np.ndarray, detector, multiple_faces: str = 'error') -> Tuple[np.ndarray, FacePose]:
    """(landmarks (468, 3), FacePose) of the face in image (H, W, 3) uint8 RGB.

    detector: a `FaceMeshDetector`. The face is also detected in the mirrored image and the two
    rotations averaged (projected back onto a rotation with an SVD).
    """
    landmarks = select_face(detector(image), multiple_faces)
    pose = pose_from_landmarks(landmarks)
    mirrored = pose_from_landmarks(select_face(detector(np.ascontiguousarray(image[:, ::-1])), multiple_faces))
    u, _, vt = np.linalg.svd(pose.rotation + _mirror_rotation(mirrored.rotation))
    return landmarks, _pose_from_rotation(u @ vt)


def crop_box(landmarks: np.ndarray) -> Tuple[float, float, float]:
    """(centre x, centre y, side) in pixels of the square crop of one face (468, 3)."""
    right_eye = landmarks[list(_RIGHT_EYE)].mean(axis=0)
    left_eye = landmarks[list(_LEFT_EYE)].mean(axis=0)
    eye_avg = (right_eye + left_eye) / 2
    eye_to_mouth = landmarks[list(_MOUTH)].mean(axis=0) - eye_avg
    centre = eye_avg + 0.1 * eye_to_mouth
    half = max(2.0 * np.linalg.norm(left_eye - right_eye), 1.8 * np.linalg.norm(eye_to_mouth))
    return float(centre[0]), float(centre[1]), float(CROP_SCALE * 2 * half)


def crop_image(image: np.ndarray, box: Tuple[float, float, float], output_size: int) -> np.ndarray:
    """(output_size, output_size, C) uint8 crop of image (H, W, C) uint8; border pixels repeat outside."""
    cx, cy, side = box
    left, top = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
    size = max(1, int(round(side)))
    height, width = image.shape[:2]
    pad = max(0, -left, -top, left + size - width, top + size - height)
    padded = np.pad(image, [(pad, pad), (pad, pad)] + [(0, 0)] * (image.ndim - 2), mode='edge')
    patch = padded[top + pad:top + pad + size, left + pad:left + pad + size]
    return np.asarray(PIL.Image.fromarray(patch).resize((output_size, output_size), PIL.Image.LANCZOS))


def align_face(image: np.ndarray, landmarks: np.ndarray, pose: FacePose, output_size: Optional[int] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """(cropped image (S, S, C) uint8, camera label (25,) float32) of one face of `image`.

    landmarks (468, 3) and pose: from `estimate_pose`. output_size: side of the crop in pixels
    (None: the crop's own size in the input).
    """
    box = crop_box(landmarks)
    size = output_size or max(1, int(round(box[2])))
    return crop_image(image, box, size), camera_label_from_rotation(pose.rotation)
