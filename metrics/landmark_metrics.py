"""Metrics read from MediaPipe face-mesh landmarks (the optional face tools, requirements-faces.txt).

- Pose accuracy: the head pose the face tools estimate on a render (`dataset_preprocessing.face_pose`)
  against the camera it was rendered from. Both become camera labels and are compared by the camera
  centre's yaw = atan2(x, z) and elevation = atan2(y, sqrt(x^2 + z^2)) (world axes, y up), in
  degrees: mean absolute yaw and pitch errors over the renders where a face was found, and the share
  of renders where one was found.
- Landmark identity (the offline alternative to ArcFace): the normalised mean error (NME) between the
  468 landmarks (x, y) of the natural and the stylised render of the same latent and camera, divided
  by the natural face's distance between the outer eye corners. 0 = the same face geometry.
"""

import math
from typing import Dict, Iterator, Tuple, Union

import numpy as np
import torch

from camera_utils import CAMERA_LABEL_DIM
from dataset_preprocessing.face_landmarks import FaceMeshDetector
from dataset_preprocessing.face_pose import camera_label_from_rotation, estimate_pose, select_face
from metrics.feature_stats import collect_rows
from metrics.metric_options import MetricOptions
from metrics.paired_renders import check_stylised, latent_batches, render_natural_and_stylised
from training.inference import image_to_uint8, seeded_rng

_OUTER_EYE_CORNERS = (33, 263)  # MediaPipe face-mesh indices


def _detector():
    return FaceMeshDetector(max_faces=1)


def label_yaw_pitch(label: Union[np.ndarray, torch.Tensor]) -> Tuple[float, float]:
    """(yaw, pitch) in degrees of the camera centre of one camera label, (25,) or (1, 25), NumPy or torch."""
    label = np.asarray(label, dtype=np.float64)
    if label.size != CAMERA_LABEL_DIM:
        raise ValueError(f'expected one camera label of {CAMERA_LABEL_DIM} numbers, got shape {label.shape}')
    x, y, z = label.reshape(-1)[[3, 7, 11]]
    return math.degrees(math.atan2(x, z)), math.degrees(math.atan2(y, math.hypot(x, z)))


def _pose_rows(opts: MetricOptions, num_gen: int) -> Iterator[np.ndarray]:
    detector = _detector()
    for z, c, seed in latent_batches(opts, num_gen):
        with torch.no_grad(), seeded_rng(opts.device, seed):
            images = image_to_uint8(opts.G(z, c, **opts.G_kwargs)['image'])
        rows = []
        for image, label in zip(images, c.cpu().numpy()):
            try:
                _, pose = estimate_pose(image, detector, multiple_faces='largest')
            except ValueError:  # no face found
                rows.append([np.nan, np.nan, 0.0])
                continue
            yaw, pitch = label_yaw_pitch(camera_label_from_rotation(pose.rotation))
            true_yaw, true_pitch = label_yaw_pitch(label)
            rows.append([abs(yaw - true_yaw), abs(pitch - true_pitch), 1.0])
        yield np.asarray(rows, dtype=np.float32)


def compute_pose_accuracy(opts: MetricOptions, num_gen: int) -> Dict[str, float]:
    """{'yaw_deg', 'pitch_deg', 'detected'} over `num_gen` renders (see the module docstring)."""
    rows = collect_rows(opts, _pose_rows(opts, num_gen), num_gen, 'pose renders')
    return _mean_where_detected(rows, ('yaw_deg', 'pitch_deg'))


def _mean_where_detected(rows: np.ndarray, names: Tuple[str, ...]) -> Dict[str, float]:
    """rows (N, len(names) + 1), the last column 1 where the face tools found the face(s): means of the
    other columns over those rows, and the share of such rows as 'detected'."""
    found = rows[:, -1] > 0
    if not found.any():
        raise ValueError(f'the face tools found no face in any of the {len(rows)} renders; the metric is undefined')
    return dict({name: float(rows[found, i].mean()) for i, name in enumerate(names)}, detected=float(found.mean()))


def landmark_nme(natural: np.ndarray, stylised: np.ndarray) -> float:
    """NME between two (468, >=2) landmark sets in pixels, normalised by the natural outer-eye distance."""
    eye_a, eye_b = _OUTER_EYE_CORNERS
    scale = np.linalg.norm(natural[eye_a, :2] - natural[eye_b, :2])
    return float(np.linalg.norm(natural[:, :2] - stylised[:, :2], axis=1).mean() / max(scale, 1e-8))


def _nme_rows(opts: MetricOptions, num_gen: int) -> Iterator[np.ndarray]:
    check_stylised(opts)
    detector = _detector()
    for z, c, seed in latent_batches(opts, num_gen):
        natural, stylised = render_natural_and_stylised(opts, z, c, seed)
        rows = []
        for image_n, image_s in zip(image_to_uint8(natural['image']), image_to_uint8(stylised['image'])):
            try:
                rows.append([landmark_nme(select_face(detector(image_n), 'largest'),
                                          select_face(detector(image_s), 'largest')), 1.0])
            except ValueError:  # no face in one of the two
                rows.append([np.nan, 0.0])
        yield np.asarray(rows, dtype=np.float32)


def compute_landmark_identity(opts: MetricOptions, num_gen: int) -> Dict[str, float]:
    """{'nme', 'detected'}: landmark NME between natural and stylised renders where both show a face."""
    rows = collect_rows(opts, _nme_rows(opts, num_gen), num_gen, 'landmark renders')
    return _mean_where_detected(rows, ('nme',))
