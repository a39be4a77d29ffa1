"""Camera poses and intrinsics in EG3D's convention, the one every camera label of this project uses.

A camera label `c` is (N, 25): the flattened 4x4 cam2world matrix followed by the flattened 3x3
intrinsics normalised by the image size. Camera axes follow OpenCV: x right, y down, z forward (the
viewing direction). The world is y-up; the FFHQ face looks along +z and sits near (0, 0, 0.2).

Camera labels have one home here: their size (`CAMERA_LABEL_DIM`), the check every consumer runs
(`check_camera_label` for tensors, `checked_camera_labels` for labels read from files; shape,
finite values, and the degenerate cases: a rotation that is not orthonormal, a focal length <= 0,
a camera inside the rendered volume), the mirror (`xflip_camera_label`) and the one reader of
`dataset.json` label files (`read_dataset_labels`).

Pose samplers take a yaw-like `horizontal_mean` (azimuth about the y axis, radians; pi/2 = camera on
the +z axis) and a pitch-like `vertical_mean` (polar angle from the +y axis, radians; pi/2 = level).
"""

import json
import math
from typing import IO, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from torch_utils import misc

__all__ = ['CAMERA_LABEL_DIM', 'FOV_DEG', 'CAMERA_RADIUS', 'CAMERA_PIVOT', 'GaussianCameraPoseSampler',
           'LookAtPoseSampler', 'UniformCameraPoseSampler', 'camera_label', 'check_camera_label',
           'checked_camera_labels', 'create_cam2world_matrix', 'FOV_to_intrinsics', 'dataset_labels_from_json',
           'find_degenerate_camera_label', 'read_dataset_labels', 'turn_camera_label', 'xflip_camera_label']

CAMERA_LABEL_DIM = 25  # 16 numbers of the cam2world matrix, then 9 of the normalised intrinsics
LABEL_LAYOUT = '16 numbers of the cam2world matrix then 9 of the intrinsics'
DATASET_JSON_FORMAT = '{"labels": [["<image path>", [25 numbers]], ...]}'

# EG3D's FFHQ cameras: every view of its face networks is taken from this distance, looking at this
# pivot, with this field of view (degrees).
FOV_DEG = 18.837
CAMERA_RADIUS = 2.7
CAMERA_PIVOT = (0.0, 0.0, 0.2)

# Labels written by any real pipeline are orthonormal to ~1e-6 in float32; 1e-3 leaves room for
# rounding in hand-made files while refusing anything that is not a rotation.
_ROTATION_TOLERANCE = 1e-3
# A camera closer than this to the world origin sits inside the rendered volume (the [-0.5, 0.5]^3 box of
# EG3D's FFHQ / AFHQ networks), at or near the pivot the cameras look at; EG3D's cameras orbit at 1.2-2.7.
MIN_CAMERA_DISTANCE = 0.5

# Polar angles are kept this far from the poles, where the look-at frame is undefined.
_POLE_EPS = 1e-5


def _camera_origins(h: torch.Tensor, v: torch.Tensor, radius: float) -> torch.Tensor:
    """Camera positions (N, 3) on a sphere of `radius` for azimuths `h` and polar angles `v`, both (N, 1).

    The polar angle is remapped as EG3D does (phi = arccos(1 - 2 v/pi)), which is the identity
    at v = pi/2 and spreads samples uniformly in cos(phi).
    """
    v = torch.clamp(v, _POLE_EPS, math.pi - _POLE_EPS)
    phi = torch.arccos(1 - 2 * (v / math.pi))
    theta = h
    return torch.cat([radius * torch.sin(phi) * torch.cos(math.pi - theta),
                      radius * torch.cos(phi),
                      radius * torch.sin(phi) * torch.sin(math.pi - theta)], dim=1)


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    """Vectors (..., 3) scaled to unit length along the last dimension."""
    return vectors / torch.norm(vectors, dim=-1, keepdim=True)


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')


class GaussianCameraPoseSampler:
    """Cameras on a sphere looking at the origin, yaw and pitch drawn from normal distributions.

    With zero standard deviations the pose is deterministic (the normal draws still happen, so the
    random stream advances exactly as in EG3D). Example, a camera at (0, 0, 1):
    `GaussianCameraPoseSampler.sample(math.pi/2, math.pi/2, radius=1)`.
    """

    @staticmethod
    def sample(horizontal_mean: float, vertical_mean: float, horizontal_stddev: float = 0,
               vertical_stddev: float = 0, radius: float = 1, batch_size: int = 1,
               device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
        """Returns cam2world matrices (batch_size, 4, 4)."""
        _check_batch_size(batch_size)
        h = torch.randn((batch_size, 1), device=device) * horizontal_stddev + horizontal_mean
        v = torch.randn((batch_size, 1), device=device) * vertical_stddev + vertical_mean
        origins = _camera_origins(h, v, radius)
        return create_cam2world_matrix(_unit(-origins), origins)


class LookAtPoseSampler:
    """Like `GaussianCameraPoseSampler`, but the camera looks at `lookat_position` (a 3-vector).

    The camera still sits on the sphere of `radius` around the world origin, not around the target.

    Example (EG3D's FFHQ frontal view): `LookAtPoseSampler.sample(math.pi/2, math.pi/2,
    torch.tensor([0, 0, 0.2]), radius=2.7)`.
    """

    @staticmethod
    def sample(horizontal_mean: float, vertical_mean: float,
               lookat_position: Union[torch.Tensor, Sequence[float]], horizontal_stddev: float = 0,
               vertical_stddev: float = 0, radius: float = 1, batch_size: int = 1,
               device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
        """Returns cam2world matrices (batch_size, 4, 4)."""
        _check_batch_size(batch_size)
        lookat = torch.as_tensor(lookat_position, dtype=torch.float32, device=device)
        if lookat.shape[-1:] != (3,) or lookat.ndim > 2:
            raise ValueError(f'lookat_position must be a 3-vector (3,) or (N, 3), got shape {tuple(lookat.shape)}')
        h = torch.randn((batch_size, 1), device=device) * horizontal_stddev + horizontal_mean
        v = torch.randn((batch_size, 1), device=device) * vertical_stddev + vertical_mean
        origins = _camera_origins(h, v, radius)
        return create_cam2world_matrix(_unit(lookat - origins), origins)


class UniformCameraPoseSampler:
    """Like `GaussianCameraPoseSampler`, but yaw and pitch are uniform in mean +- stddev."""

    @staticmethod
    def sample(horizontal_mean: float, vertical_mean: float, horizontal_stddev: float = 0,
               vertical_stddev: float = 0, radius: float = 1, batch_size: int = 1,
               device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
        """Returns cam2world matrices (batch_size, 4, 4)."""
        _check_batch_size(batch_size)
        h = (torch.rand((batch_size, 1), device=device) * 2 - 1) * horizontal_stddev + horizontal_mean
        v = (torch.rand((batch_size, 1), device=device) * 2 - 1) * vertical_stddev + vertical_mean
        origins = _camera_origins(h, v, radius)
        return create_cam2world_matrix(_unit(-origins), origins)


def create_cam2world_matrix(forward_vector: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Cam2world matrices (N, 4, 4) of cameras at `origin` (N, 3) looking along `forward_vector` (N, 3).

    No roll: the camera's x axis stays horizontal (world y-up). The columns of the rotation are the
    camera's x (right), y (down, OpenCV) and z (forward) axes in world coordinates.
    """
    if forward_vector.ndim != 2 or forward_vector.shape[-1] != 3 or origin.shape != forward_vector.shape:
        raise ValueError(f'forward_vector and origin must both be (N, 3), got {tuple(forward_vector.shape)} '
                         f'and {tuple(origin.shape)}')
    forward = _unit(forward_vector)
    world_up = torch.tensor([0, 1, 0], dtype=torch.float, device=origin.device).expand_as(forward)
    right = -_unit(torch.cross(world_up, forward, dim=-1))
    down = _unit(torch.cross(forward, right, dim=-1))

    cam2world = torch.eye(4, device=origin.device).unsqueeze(0).repeat(forward.shape[0], 1, 1)
    cam2world[:, :3, :3] = torch.stack((right, down, forward), dim=-1)
    cam2world[:, :3, 3] = origin
    return cam2world


def FOV_to_intrinsics(fov_degrees: float, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """Normalised 3x3 intrinsics (focal length in units of the image size, principal point at the centre).

    The constants 3.14159 and 1.414 are EG3D's (not pi and sqrt(2)); kept so labels match bit for bit.
    """
    if not 0 < fov_degrees < 180:
        raise ValueError(f'fov_degrees must be in (0, 180), got {fov_degrees}')
    focal_length = float(1 / (math.tan(fov_degrees * 3.14159 / 360) * 1.414))
    return torch.tensor([[focal_length, 0, 0.5], [0, focal_length, 0.5], [0, 0, 1]], device=device)


def camera_label(yaw: float = 0.0, pitch: float = 0.0, fov_deg: float = FOV_DEG, radius: float = CAMERA_RADIUS,
                 pivot: Sequence[float] = CAMERA_PIVOT, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """The (1, 25) label of a camera `radius` from the world origin, looking at `pivot`, turned by `yaw`
    and `pitch` (radians) from the frontal view (camera on the +z axis); positive yaw moves the camera
    towards +x, positive pitch moves it down.

    Poses are built by `LookAtPoseSampler`, which draws (unused) random numbers: build labels before
    any seeded rendering.
    """
    pivot = torch.as_tensor(pivot, dtype=torch.float32, device=device)
    cam2world = LookAtPoseSampler.sample(math.pi / 2 + yaw, math.pi / 2 + pitch, pivot, radius=radius, device=device)
    return torch.cat([cam2world.reshape(1, 16), FOV_to_intrinsics(fov_deg, device=device).reshape(1, 9)], dim=1)


def turn_camera_label(c: torch.Tensor, yaw: float, pivot: Sequence[float] = CAMERA_PIVOT) -> torch.Tensor:
    """Camera labels c (N, 25) turned by `yaw` radians about the vertical (y) axis through `pivot`: each
    camera orbits the pivot at its own height and keeps its intrinsics."""
    cos, sin = math.cos(yaw), math.sin(yaw)
    rotation = torch.eye(4, dtype=c.dtype, device=c.device)
    rotation[0, 0], rotation[0, 2], rotation[2, 0], rotation[2, 2] = cos, sin, -sin, cos
    pivot = torch.as_tensor(pivot, dtype=c.dtype, device=c.device)
    to_pivot, from_pivot = torch.eye(4, dtype=c.dtype, device=c.device), torch.eye(4, dtype=c.dtype, device=c.device)
    to_pivot[:3, 3], from_pivot[:3, 3] = pivot, -pivot
    cam2world = to_pivot @ rotation @ from_pivot @ c[:, :16].reshape(-1, 4, 4)
    return torch.cat([cam2world.reshape(-1, 16), c[:, 16:]], dim=1)


# ---------------------------------------------------------------------------------------------
# Camera labels: the checks, the mirror and the dataset.json reader.

def find_degenerate_camera_label(c: Union[torch.Tensor, np.ndarray]) -> Optional[Tuple[int, str]]:
    """(row, reason) of the first label in c (N, 25) that cannot be rendered, or None if all can.

    Refused: non-finite numbers, a cam2world rotation that is not orthonormal with determinant +1,
    a focal length (intrinsics fx = c[16] or fy = c[20]) <= 0, a camera inside the rendered volume
    (closer than MIN_CAMERA_DISTANCE to the world origin, e.g. at the pivot or all zeros).
    """
    c = torch.as_tensor(c).detach().to(torch.float32)
    finite = torch.isfinite(c).all(dim=1)
    safe = torch.where(finite[:, None], c, torch.zeros_like(c))
    rotation = safe[:, :16].view(-1, 4, 4)[:, :3, :3]
    gram_error = (rotation.transpose(1, 2) @ rotation - torch.eye(3, device=c.device)).abs().amax(dim=(1, 2))
    rotation_ok = (gram_error <= _ROTATION_TOLERANCE) & (torch.linalg.det(rotation) > 0)
    focal_ok = (safe[:, 16] > 0) & (safe[:, 20] > 0)
    distance = safe[:, :16].view(-1, 4, 4)[:, :3, 3].norm(dim=1)
    position_ok = distance >= MIN_CAMERA_DISTANCE
    ok = finite & rotation_ok & focal_ok & position_ok
    if bool(ok.all()):
        return None
    row = int((~ok).nonzero()[0, 0])
    if not finite[row]:
        reason = f'it has non-finite numbers {c[row].tolist()}'
    elif not rotation_ok[row]:
        reason = (f'its rotation (cam2world[:3, :3]) is not a rotation matrix (max |R^T R - I| = '
                  f'{float(gram_error[row]):.3g}, det = {float(torch.linalg.det(rotation[row])):.3g})')
    elif not focal_ok[row]:
        reason = (f'its focal length must be > 0 (fx = c[16] = {float(c[row, 16]):g}, '
                  f'fy = c[20] = {float(c[row, 20]):g})')
    else:
        reason = (f'the camera sits inside the rendered volume, {float(distance[row]):.3g} from the world origin '
                  f'(cam2world translation {c[row, [3, 7, 11]].tolist()}; must be >= {MIN_CAMERA_DISTANCE})')
    return row, reason


def check_camera_label(c: torch.Tensor, batch_size: Optional[int] = None, name: str = 'camera label c',
                       conditioning_only: bool = False) -> None:
    """Raise ValueError unless c is a usable (N, 25) camera label batch (N = batch_size when given).

    Usable: finite, and not degenerate (see `find_degenerate_camera_label`); the message names the row.
    conditioning_only: c only conditions a mapping network and is never rendered (EG3D maps with
    all-zero labels, for example), so shape and finiteness suffice.
    """
    if not isinstance(c, torch.Tensor) or c.ndim != 2 or c.shape[1] != CAMERA_LABEL_DIM or \
            (batch_size is not None and c.shape[0] != batch_size):
        n = 'N' if batch_size is None else str(batch_size)
        got = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
        raise ValueError(f'{name} must be ({n}, {CAMERA_LABEL_DIM}): {LABEL_LAYOUT}; got {got}')
    misc.assert_finite(c, name)
    if conditioning_only:
        return
    problem = find_degenerate_camera_label(c)
    if problem is not None:
        row, reason = problem
        raise ValueError(f'{name}[{row}] is not a usable camera: {reason}')


def checked_camera_labels(labels: Mapping[str, Any], where: str) -> Dict[str, np.ndarray]:
    """{name: (25,) float32} of labels read from a file, after the checks of `check_camera_label`.

    Raises ValueError starting with `where` and naming the first bad label's key.
    """
    rows = {}
    for name, label in labels.items():
        try:
            row = np.asarray(label, dtype=np.float32)
        except (TypeError, ValueError):
            row = None
        if row is None or row.shape != (CAMERA_LABEL_DIM,):
            raise ValueError(f'{where}: the label of "{name}" must be {CAMERA_LABEL_DIM} numbers ({LABEL_LAYOUT}), '
                             f'got {label!r}')
        rows[name] = row
    if rows:
        problem = find_degenerate_camera_label(np.stack(list(rows.values())))
        if problem is not None:
            row, reason = problem
            raise ValueError(f'{where}: the label of "{list(rows)[row]}" is not a usable camera: {reason}')
    return rows


def read_dataset_labels(f: IO, where: str) -> Optional[Dict[str, Any]]:
    """The labels of an open `dataset.json` (EG3D's format, text or binary file): {path: label}.

    Keys are paths relative to the dataset root with '/' separators; values are as stored (a camera
    label, or an int class index in StyleGAN's datasets), for `checked_camera_labels` to check.
    None when the file says `{"labels": null}` (an unlabelled dataset). ValueError names `where`.
    """
    try:
        data = json.load(f)
    except ValueError as err:
        raise ValueError(f'{where} must be {DATASET_JSON_FORMAT} (not valid JSON: {err})') from err
    return dataset_labels_from_json(data, where)


def dataset_labels_from_json(data: Any, where: str) -> Optional[Dict[str, Any]]:
    """`read_dataset_labels` for the already parsed JSON object `data`."""
    try:
        entries = data['labels']
        if entries is None:
            return None
        labels = {}
        for name, label in entries:
            if not isinstance(name, str):
                raise TypeError(f'image path {name!r} is not a string')
            labels[name.replace('\\', '/')] = label
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f'{where} must be {DATASET_JSON_FORMAT} ({type(err).__name__}: {err})') from err
    return labels


# Mirroring the world about the x = 0 plane is S = diag(-1, 1, 1, 1). An image flipped left-right is
# the view of the mirrored scene from the mirrored camera whose x axis is flipped too, i.e.
# cam2world' = S @ cam2world @ S: every entry with exactly one index equal to 0 changes sign. In the
# intrinsics the principal point moves to cx' = 1 - cx (pixel centres u -> 1 - u stay centres).
_CAM2WORLD_XFLIP_SIGNS = np.outer([-1, 1, 1, 1], [-1, 1, 1, 1]).astype(np.float32).reshape(16)


def xflip_camera_label(label: np.ndarray) -> np.ndarray:
    """Camera label(s) of the left-right mirrored image: (..., 25) float -> (..., 25) float32.

    The mirrored label renders the mirror image of the mirrored scene (EG3D's `flip_yaw`, derived
    in the comment above); yaw and roll change sign, pitch and radius stay.
    """
    label = np.asarray(label, dtype=np.float32)
    if label.shape[-1:] != (CAMERA_LABEL_DIM,):
        raise ValueError(f'camera label must be (..., {CAMERA_LABEL_DIM}): {LABEL_LAYOUT}; got shape {label.shape}')
    flipped = label.copy()
    flipped[..., :16] *= _CAM2WORLD_XFLIP_SIGNS
    flipped[..., 18] = 1 - label[..., 18]  # principal point cx (intrinsics[0, 2]).
    return flipped
