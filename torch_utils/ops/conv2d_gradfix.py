"""2-D convolutions for losses that differentiate twice (R1), with a switch to skip weight gradients.

EG3D needed a custom autograd function here because old PyTorch versions could not differentiate
cuDNN convolutions twice. The PyTorch this project pins (2.13) can, for conv2d and
conv_transpose2d, on every device, so these are thin wrappers; what remains is
`no_weight_gradients()`, which the R1 penalty uses so that its gradient with respect to the
discriminator input does not also build the (unused, expensive) weight-gradient graph.
"""

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F

weight_gradients_disabled = False


@contextlib.contextmanager
def no_weight_gradients(disable: bool = True):
    """Inside this context, conv2d/conv_transpose2d treat their weights as constants (if `disable`)."""
    global weight_gradients_disabled
    previous = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = previous


def _weight(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach() if weight_gradients_disabled else weight


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1,
           padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """torch.nn.functional.conv2d: (N, Cin, H, W) x (Cout, Cin/groups, kh, kw) -> (N, Cout, H', W')."""
    return F.conv2d(input, _weight(weight), bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_transpose2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> torch.Tensor:
    """torch.nn.functional.conv_transpose2d: (N, Cin, H, W) x (Cin, Cout/groups, kh, kw) -> (N, Cout, H', W')."""
    return F.conv_transpose2d(input, _weight(weight), bias, stride=stride, padding=padding,
                              output_padding=output_padding, groups=groups, dilation=dilation)
