"""Alias-free leaky ReLU: bias, upsample, leaky ReLU, clamp, downsample (EG3D's `filtered_lrelu`)."""

from typing import Optional

import numpy as np
import torch

from torch_utils import misc
from torch_utils.ops import bias_act, upfirdn2d
from torch_utils.ops.upfirdn2d import Padding, _get_filter_size, _parse_padding


def _check_args(x, fu, fd, b, up, down, impl) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'filtered_lrelu: x must be a 4-D tensor (N, C, H, W), got '
                         f'{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}')
    for name, f in (('fu', fu), ('fd', fd)):
        if f is not None and (f.dtype != torch.float32 or f.ndim not in (1, 2)):
            raise ValueError(f'filtered_lrelu: {name} must be a float32 1-D or 2-D filter (see '
                             f'upfirdn2d.setup_filter), got {f.dtype} of shape {tuple(f.shape)}')
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f'filtered_lrelu: b must have shape ({x.shape[1]},), got {tuple(b.shape)}')
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f'filtered_lrelu: up and down must be ints >= 1, got up={up}, down={down}')
    if impl not in ('ref', 'cuda'):
        raise ValueError(f'filtered_lrelu: impl must be "ref" or "cuda", got "{impl}"')


def output_shape(x_shape, fu, fd, up: int, down: int, padding: Padding):
    """(N, C, H', W') that filtered_lrelu gives for an input of shape x_shape."""
    fu_w, fu_h = _get_filter_size(fu)
    fd_w, fd_h = _get_filter_size(fd)
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x_shape
    out_w = (w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return n, c, out_h, out_w


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = np.sqrt(2), slope: float = 0.2, clamp: Optional[float] = None,
                   flip_filter: bool = False, impl: str = 'cuda') -> torch.Tensor:
    """Bias, upsample by `up` with `fu`, leaky ReLU times `gain`, clamp, downsample by `down` with `fd`.

    Args:
        x: (N, C, H, W) input.
        fu, fd: up/downsampling filters from `upfirdn2d.setup_filter` (None = identity).
        b: (C,) bias added before upsampling, or None.
        up, down: integer factors.
        padding: int / [x, y] / [x0, x1, y0, y1] padding of the upsampled image; negative crops.
        gain, slope: leaky ReLU output scale and negative slope.
        clamp: clamp the activations to [-clamp, clamp] before downsampling; None = no clamping.
        flip_filter: passed to upfirdn2d.
        impl: 'cuda' = compiled kernel for the tensor's device when available, else the reference;
            'ref' = pure PyTorch.
    Returns:
        (N, C, (H*up + py0 + py1 - (fu_h-1) - (fd_h-1) + down-1) // down, likewise for W).
    """
    _check_args(x, fu, fd, b, up, down, impl)
    return _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)


def _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter) -> torch.Tensor:
    """Pure-PyTorch filtered_lrelu composed of bias_act and upfirdn2d."""
    out_shape = output_shape(x.shape, fu, fd, up, down, padding)
    x = bias_act.bias_act(x, b, impl='ref')
    x = upfirdn2d.upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, flip_filter=flip_filter, impl='ref')
    x = bias_act.bias_act(x, act='lrelu', alpha=slope, gain=gain, clamp=clamp, impl='ref')
    x = upfirdn2d.upfirdn2d(x, fd, down=down, flip_filter=flip_filter, impl='ref')
    misc.assert_shape(x, out_shape, 'filtered_lrelu output')
    return x
