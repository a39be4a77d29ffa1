"""Camera rays through pixel centres, from cam2world matrices (OpenCV axes) and normalised intrinsics."""

from typing import Tuple

import torch

from torch_utils import misc


class RaySampler(torch.nn.Module):
    """One ray per pixel of a `resolution` x `resolution` image, rows top to bottom, pixels left to right."""

    def forward(self, cam2world_matrix: torch.Tensor, intrinsics: torch.Tensor,
                resolution: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """cam2world_matrix (N, 4, 4), intrinsics (N, 3, 3) normalised by the image size.

        Returns ray origins and unit directions, both (N, resolution**2, 3), in world coordinates.
        """
        misc.assert_shape(cam2world_matrix, [None, 4, 4], 'cam2world_matrix')
        misc.assert_shape(intrinsics, [cam2world_matrix.shape[0], 3, 3], 'intrinsics')
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f'resolution must be a positive int, got {resolution!r}')
        N, M = cam2world_matrix.shape[0], resolution ** 2
        device = cam2world_matrix.device
        cam_locs_world = cam2world_matrix[:, :3, 3]
        fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
        cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
        sk = intrinsics[:, 0, 1, None]

        # Pixel centres in [0, 1] image coordinates: u along a row (x), v down the rows (y).
        centres = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution
        v, u = torch.meshgrid(centres, centres, indexing='ij')
        x_cam = u.reshape(1, M).expand(N, M)
        y_cam = v.reshape(1, M).expand(N, M)

        # Back-project to the z = 1 plane of the camera (inverse of the skewed pinhole model).
        x_lift = (x_cam - cx + cy * sk / fy - sk * y_cam / fy) / fx
        y_lift = (y_cam - cy) / fy
        ones = torch.ones((N, M), device=device)
        cam_rel_points = torch.stack((x_lift, y_lift, ones, ones), dim=-1)  # [N, M, 4] homogeneous

        world_rel_points = torch.bmm(cam2world_matrix, cam_rel_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
        ray_dirs = torch.nn.functional.normalize(world_rel_points - cam_locs_world[:, None, :], dim=2)
        ray_origins = cam_locs_world.unsqueeze(1).repeat(1, M, 1)
        return ray_origins, ray_dirs
