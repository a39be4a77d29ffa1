"""Ray helpers of the volume renderer (EG3D's `math_utils`): ray / box limits and per-ray linspace."""

import torch


def get_ray_limits_box(rays_o: torch.Tensor, rays_d: torch.Tensor, box_side_length: float):
    """Entry and exit distances of rays through the axis-aligned cube of side `box_side_length`
    centred at the origin (slab method).

    rays_o, rays_d: (..., 3) origins and directions. Returns `(t_min, t_max)`, each (..., 1);
    rays that miss the cube get t_min = -1 and t_max = -2 (so `t_max > t_min` marks a hit).
    """
    o_shape = rays_o.shape
    rays_o = rays_o.detach().reshape(-1, 3)
    rays_d = rays_d.detach().reshape(-1, 3)
    half = box_side_length / 2
    inv_d = 1 / rays_d
    # Per axis, the near plane is the one facing the ray: -half for positive directions.
    near_plane = torch.where(inv_d < 0, half, -half)
    t_near = (near_plane - rays_o) * inv_d
    t_far = (-near_plane - rays_o) * inv_d

    t_min, t_max = t_near[:, 0], t_far[:, 0]
    is_valid = torch.ones_like(t_min, dtype=torch.bool)
    for axis in (1, 2):
        # A ray misses the box as soon as the slab intervals stop overlapping.
        is_valid &= ~torch.logical_or(t_min > t_far[:, axis], t_near[:, axis] > t_max)
        t_min = torch.max(t_min, t_near[:, axis])
        t_max = torch.min(t_max, t_far[:, axis])
    t_min = torch.where(is_valid, t_min, torch.full_like(t_min, -1))
    t_max = torch.where(is_valid, t_max, torch.full_like(t_max, -2))
    return t_min.reshape(*o_shape[:-1], 1), t_max.reshape(*o_shape[:-1], 1)


def linspace(start: torch.Tensor, stop: torch.Tensor, num: int) -> torch.Tensor:
    """Multi-dimensional `numpy.linspace`: (num, *start.shape), evenly spaced from start to stop inclusive."""
    steps = torch.arange(num, dtype=torch.float32, device=start.device) / (num - 1)
    steps = steps.reshape(num, *([1] * start.ndim))
    return start[None] + steps * (stop - start)[None]
