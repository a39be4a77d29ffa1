"""RaySampler: rays start at the camera, have unit length and pass through the pixel centres."""

import math

import numpy as np
import pytest
import torch

from camera_utils import FOV_to_intrinsics, LookAtPoseSampler
from training.volumetric_rendering.ray_sampler import RaySampler


def _cameras():
    torch.manual_seed(0)
    poses = LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, torch.tensor([0, 0, 0.2]), horizontal_stddev=0.4,
                                     vertical_stddev=0.2, radius=2.7, batch_size=3)
    intrinsics = torch.stack([FOV_to_intrinsics(18.837), FOV_to_intrinsics(30.0),
                              torch.tensor([[2.0, 0.3, 0.45], [0, 2.5, 0.55], [0, 0, 1]])])  # skewed, off-centre
    return poses, intrinsics


@pytest.mark.parametrize('resolution', [1, 5, 16])
def test_rays_pass_through_pixel_centres(resolution):
    poses, intrinsics = _cameras()
    origins, dirs = RaySampler()(poses, intrinsics, resolution)
    assert origins.shape == dirs.shape == (3, resolution ** 2, 3)
    np.testing.assert_allclose(origins.numpy(), poses[:, None, :3, 3].expand(-1, resolution ** 2, -1).numpy())
    np.testing.assert_allclose(dirs.norm(dim=-1).numpy(), 1, atol=1e-6)
    # Back into the camera frame and through the pinhole model: normalised pixel coordinates.
    cam_dirs = torch.einsum('nji,nmj->nmi', poses[:, :3, :3], dirs)  # R^T d
    assert torch.all(cam_dirs[..., 2] > 0)  # in front of the camera (OpenCV: +z forward)
    uv = torch.einsum('nij,nmj->nmi', intrinsics, cam_dirs / cam_dirs[..., 2:])[..., :2]
    centres = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution
    v, u = torch.meshgrid(centres, centres, indexing='ij')  # rows top to bottom, pixels left to right
    expected = torch.stack([u.reshape(-1), v.reshape(-1)], -1).expand(3, -1, -1)
    np.testing.assert_allclose(uv.numpy(), expected.numpy(), atol=2e-5)


def test_centre_ray_is_the_optical_axis():
    poses, intrinsics = _cameras()
    _, dirs = RaySampler()(poses[:1], intrinsics[:1], 3)
    np.testing.assert_allclose(dirs[0, 4].numpy(), poses[0, :3, 2].numpy(), atol=1e-6)


def test_bad_input():
    poses, intrinsics = _cameras()
    with pytest.raises(ValueError, match=r'cam2world_matrix must have shape \(N, 4, 4\)'):
        RaySampler()(poses[:, :3], intrinsics, 4)
    with pytest.raises(ValueError, match=r'intrinsics must have shape \(3, 3, 3\)'):
        RaySampler()(poses, intrinsics[:2], 4)
    with pytest.raises(ValueError, match='resolution'):
        RaySampler()(poses, intrinsics, 0)
