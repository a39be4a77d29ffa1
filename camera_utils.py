"""Camera poses and intrinsics in EG3D's convention, the one every camera label of this project uses.

A camera label `c` is (N, 25): the flattened 4x4 cam2world matrix followed by the flattened 3x3
intrinsics normalised by the image size. Camera axes follow OpenCV: x right, y down, z forward (the
viewing direction). The world is y-up; the FFHQ face looks along +z and sits near (0, 0, 0.2).

Pose samplers take a yaw-like `horizontal_mean` (azimuth about the y axis, radians; pi/2 = camera on
the +z axis) and a pitch-like `vertical_mean` (polar angle from the +y axis, radians; pi/2 = level).
"""

import math
from typing import Sequence, Union

import torch

from training.volumetric_rendering import math_utils

__all__ = ['GaussianCameraPoseSampler', 'LookAtPoseSampler', 'UniformCameraPoseSampler',
           'create_cam2world_matrix', 'FOV_to_intrinsics']

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
        return create_cam2world_matrix(math_utils.normalize_vecs(-origins), origins)


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
        return create_cam2world_matrix(math_utils.normalize_vecs(lookat - origins), origins)


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
        return create_cam2world_matrix(math_utils.normalize_vecs(-origins), origins)


def create_cam2world_matrix(forward_vector: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Cam2world matrices (N, 4, 4) of cameras at `origin` (N, 3) looking along `forward_vector` (N, 3).

    No roll: the camera's x axis stays horizontal (world y-up). The columns of the rotation are the
    camera's x (right), y (down, OpenCV) and z (forward) axes in world coordinates.
    """
    if forward_vector.ndim != 2 or forward_vector.shape[-1] != 3 or origin.shape != forward_vector.shape:
        raise ValueError(f'forward_vector and origin must both be (N, 3), got {tuple(forward_vector.shape)} '
                         f'and {tuple(origin.shape)}')
    forward = math_utils.normalize_vecs(forward_vector)
    world_up = torch.tensor([0, 1, 0], dtype=torch.float, device=origin.device).expand_as(forward)
    right = -math_utils.normalize_vecs(torch.cross(world_up, forward, dim=-1))
    down = math_utils.normalize_vecs(torch.cross(forward, right, dim=-1))

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
