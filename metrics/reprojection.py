"""Reprojecting one rendered view into another with its depth: the geometry of the multi-view metric.

Conventions are the project's (camera_utils.py): camera label c (N, 25) = cam2world (OpenCV axes,
16) + intrinsics normalised by the image size (9); pixel (row i, column j) of an R x R image has
image coordinates ((j + 0.5) / R, (i + 0.5) / R); depth is the distance along the unit ray from the
camera centre to the surface, as EG3D's `image_depth` and the synthetic heads' ground truth measure it.
"""

from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from camera_utils import check_camera_label
from torch_utils import misc
from training.volumetric_rendering.ray_sampler import RaySampler


def reproject(depth: torch.Tensor, c_src: torch.Tensor, c_dst: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Where the surface points seen by the source camera land in the destination view.

    depth (N, 1, R, R) ray distances in the source view; c_src, c_dst (N, 25).
    Returns uv (N, R, R, 2) destination image coordinates in [0, 1] when inside the frame, and
    dist (N, R, R) the distance of each point from the destination camera centre.
    """
    misc.assert_shape(depth, [None, 1, None, None], 'depth')
    check_camera_label(c_src, depth.shape[0], 'source camera label')
    check_camera_label(c_dst, depth.shape[0], 'destination camera label')
    n, _, res, _ = depth.shape
    origins, dirs = RaySampler()(c_src[:, :16].view(-1, 4, 4), c_src[:, 16:].view(-1, 3, 3), res)
    points = origins + dirs * depth.reshape(n, res * res, 1)   # (N, R*R, 3) world
    cam2world = c_dst[:, :16].view(-1, 4, 4)
    rel = points - cam2world[:, None, :3, 3]
    cam = rel @ cam2world[:, :3, :3]                           # world -> camera axes (R^T (X - o))
    intr = c_dst[:, 16:].view(-1, 3, 3)
    z = cam[..., 2].clamp(min=1e-6)
    u = intr[:, None, 0, 0] * cam[..., 0] / z + intr[:, None, 0, 1] * cam[..., 1] / z + intr[:, None, 0, 2]
    v = intr[:, None, 1, 1] * cam[..., 1] / z + intr[:, None, 1, 2]
    uv = torch.stack([u, v], dim=-1).reshape(n, res, res, 2)
    return uv, rel.norm(dim=-1).reshape(n, res, res)


def sample(image: torch.Tensor, uv: torch.Tensor, mode: str = 'bilinear') -> torch.Tensor:
    """image (N, C, H, W) read at image coordinates uv (N, R, R, 2) in [0, 1] -> (N, C, R, R)."""
    return F.grid_sample(image, uv * 2 - 1, mode=mode, padding_mode='border', align_corners=False)


def view_consistency(image_a: torch.Tensor, depth_a: torch.Tensor, c_a: torch.Tensor,
                     image_b: torch.Tensor, depth_b: torch.Tensor, c_b: torch.Tensor,
                     visibility_tol: float = 0.03, max_depth_error: float = 0.1) -> Dict[str, torch.Tensor]:
    """Per-sample errors (N,) of view A reprojected into view B.

    images (N, C, R, R) in [0, 1]; depths (N, 1, R, R) ray distances (non-finite = no surface).
    A pixel of A is in frame when it has a surface and lands inside B's image; it is visible in B when
    its distance from B's camera matches B's depth there within `visibility_tol` (relative).
    - photo: mean |I_A - I_B(reprojected)| over visible pixels and channels;
    - depth: mean over in-frame pixels of min(|dist_B - depth_B(reprojected)| / dist_B, max_depth_error);
    - visible: share of in-frame pixels that are visible.
    """
    uv, dist = reproject(_finite_or_zero(depth_a), c_a, c_b)
    depth_b_seen = sample(_finite_or_zero(depth_b), uv, 'nearest')[:, 0]
    surface_b_seen = sample(depth_b.isfinite().to(depth_b.dtype), uv, 'nearest')[:, 0] > 0.5
    inside = ((uv >= 0) & (uv <= 1)).all(dim=-1)
    in_frame = inside & depth_a[:, 0].isfinite()
    rel_error = torch.where(surface_b_seen, (dist - depth_b_seen).abs() / dist, torch.full_like(dist, float('inf')))
    visible = in_frame & (rel_error <= visibility_tol)
    photo = (image_a - sample(image_b, uv)).abs().mean(dim=1)
    return dict(photo=_masked_mean(photo, visible), depth=_masked_mean(rel_error.clamp(max=max_depth_error), in_frame),
                visible=_masked_mean(visible.to(photo.dtype), in_frame))


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.isfinite(), x, torch.zeros_like(x))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, R, R) values, bool mask -> (N,) mean over the masked pixels (0 where none)."""
    return (values * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1).clamp(min=1)
