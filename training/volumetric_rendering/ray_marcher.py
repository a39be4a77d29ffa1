"""Volume rendering quadrature (EG3D's MipRayMarcher2): composites colours and depths along rays."""

from typing import Tuple

import torch
import torch.nn.functional as F


class MipRayMarcher2(torch.nn.Module):
    """Alpha compositing over the N-1 intervals between consecutive samples (mid-point values)."""

    def run_forward(self, colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor,
                    rendering_options: dict, clamp_depth: bool = True
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """colors (N, R, S, C), densities (N, R, S, 1) raw (pre-activation), depths (N, R, S, 1) sorted.

        Returns composite colour (N, R, C) scaled to [-1, 1], composite depth (N, R, 1) and the
        compositing weights (N, R, S-1, 1). The depth of rays with zero total weight is NaN before
        the clamp; with `clamp_depth` it is clamped to [min(depths), max(depths)] over the whole
        tensor as EG3D does (a chunked caller clamps once over all chunks instead).
        """
        if rendering_options['clamp_mode'] != 'softplus':
            raise ValueError(f"MipRayMarcher2 supports only clamp_mode='softplus', "
                             f"got {rendering_options['clamp_mode']!r}")
        deltas = depths[:, :, 1:] - depths[:, :, :-1]
        colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
        densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
        depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2

        densities_mid = F.softplus(densities_mid - 1)  # bias of -1: an empty-ish volume at initialisation
        alpha = 1 - torch.exp(-densities_mid * deltas)
        # Transmittance before each interval; the 1e-10 keeps cumprod from collapsing to exactly 0.
        alpha_shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
        weights = alpha * torch.cumprod(alpha_shifted, -2)[:, :, :-1]

        composite_rgb = torch.sum(weights * colors_mid, -2)
        weight_total = weights.sum(2)
        composite_depth = torch.sum(weights * depths_mid, -2) / weight_total
        if clamp_depth:
            composite_depth = clamp_composite_depth(composite_depth, torch.min(depths), torch.max(depths))

        if rendering_options.get('white_back', False):
            composite_rgb = composite_rgb + 1 - weight_total
        composite_rgb = composite_rgb * 2 - 1
        return composite_rgb, composite_depth, weights

    def forward(self, colors, densities, depths, rendering_options, clamp_depth: bool = True):
        return self.run_forward(colors, densities, depths, rendering_options, clamp_depth=clamp_depth)


def clamp_composite_depth(depth: torch.Tensor, depth_min: torch.Tensor, depth_max: torch.Tensor) -> torch.Tensor:
    """Rays that hit nothing (NaN depth) go to the far end; everything is clamped to the sampled range."""
    return torch.clamp(torch.nan_to_num(depth, float('inf')), depth_min, depth_max)
