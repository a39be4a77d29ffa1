"""What the installed PyTorch can do, for tests that check a capability of torch itself."""

import torch
import torch.nn.functional as F


def grid_sample_double_backward() -> bool:
    """Whether torch differentiates grid_sample's backward (the PyTorch this project pins, 2.13, does;
    2.11 raises 'derivative for aten::grid_sampler_2d_backward is not implemented')."""
    image = torch.ones(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    grid = torch.zeros(1, 1, 1, 2, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(F.grid_sample(image, grid, align_corners=False).sum(), grid, create_graph=True)
    try:
        torch.autograd.grad(grad.sum(), image)
    except RuntimeError as err:
        if 'not implemented' in str(err):
            return False
        raise
    return True


GRID_SAMPLE_DOUBLE_BACKWARD = grid_sample_double_backward()
