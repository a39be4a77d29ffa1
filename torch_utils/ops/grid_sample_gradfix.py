"""Bilinear grid sampling whose gradient is itself differentiable (EG3D's `grid_sample_gradfix`).

EG3D wrapped torch's sampler in a custom autograd function because old PyTorch could not
differentiate its backward. The PyTorch this project pins (2.13) differentiates
`grid_sampler_2d_backward` with respect to both the input and the grid (checked by
tests/torch_utils/ops/test_grid_sample_gradfix.py with gradgradcheck), so a thin wrapper with
EG3D's fixed settings is all that is needed. Older PyTorch (2.11, for one) raises "derivative for
aten::grid_sampler_2d_backward is not implemented" on a second derivative through a render; no loss
of this project takes one (R1 differentiates the discriminator, which samples no tri-planes).
"""

import torch
import torch.nn.functional as F


def grid_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample (N, C, H, W) `input` at (N, Ho, Wo, 2) `grid` positions (x, y in [-1, 1]) -> (N, C, Ho, Wo).

    Bilinear, zero padding outside the image, align_corners=False (pixel centres at (2i+1)/size-1),
    the settings of EG3D's tri-plane renderer.
    """
    if input.ndim != 4 or grid.ndim != 4 or grid.shape[3] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(f'grid_sample: input must be (N, C, H, W) and grid (N, Ho, Wo, 2) with the same N, '
                         f'got {tuple(input.shape)} and {tuple(grid.shape)}')
    return F.grid_sample(input, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
