"""Alias-free leaky ReLU: bias, upsample, leaky ReLU, clamp, downsample (EG3D's `filtered_lrelu`)."""

import os
from typing import Optional

import numpy as np
import torch

from torch_utils import custom_ops, misc
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
    out_shape = output_shape(x.shape, fu, fd, up, down, padding)
    if out_shape[2] < 1 or out_shape[3] < 1:
        raise ValueError(f'filtered_lrelu: input {tuple(x.shape)} with up={up}, down={down}, padding={padding} '
                         f'and these filters gives an empty output {out_shape}')
    if impl == 'cuda':
        plugin = _plugin()
        filters_fixed = not any(f is not None and f.requires_grad for f in (fu, fd))
        if custom_ops.handles(plugin, x, b) and filters_fixed:
            one = torch.ones([1, 1], dtype=torch.float32, device=x.device)
            return _FilteredLReluCompiled.apply(x, b, one if fu is None else fu, one if fd is None else fd, up, down,
                                                _parse_padding(padding), float(gain), float(slope),
                                                -1.0 if clamp is None else float(clamp), flip_filter, plugin.ops)
    return _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)


def _plugin():
    return custom_ops.get_plugin('filtered_lrelu_plugin', os.path.dirname(__file__),
                                 cpp_sources=['filtered_lrelu.cpp'], cuda_sources=['filtered_lrelu.cu'],
                                 headers=['filtered_lrelu.h', 'upfirdn2d.h', 'upfirdn2d_cpu.h',
                                          'cuda_half_io.h'])


def _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter) -> torch.Tensor:
    """Pure-PyTorch filtered_lrelu composed of bias_act and upfirdn2d."""
    out_shape = output_shape(x.shape, fu, fd, up, down, padding)
    x = bias_act.bias_act(x, b, impl='ref')
    x = upfirdn2d.upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, flip_filter=flip_filter, impl='ref')
    x = bias_act.bias_act(x, act='lrelu', alpha=slope, gain=gain, clamp=clamp, impl='ref')
    x = upfirdn2d.upfirdn2d(x, fd, down=down, flip_filter=flip_filter, impl='ref')
    misc.assert_shape(x, out_shape, 'filtered_lrelu output')
    return x


class _FilteredLReluCompiled(torch.autograd.Function):
    """Compiled filtered_lrelu with its first derivative (w.r.t. x and b)."""

    @staticmethod
    def forward(ctx, x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter, ops):
        px0, px1, py0, py1 = padding
        # The mask (one byte per upsampled element: negative / clamped) is kept only when a gradient is needed.
        write_mask = any(ctx.needs_input_grad[:2])
        y, mask = ops.forward(x, fu, fd, b, up, down, px0, px1, py0, py1, gain, slope, clamp, flip_filter, write_mask)
        ctx.save_for_backward(fu, fd, mask)
        ctx.args = (x.shape, up, down, px0, py0, gain, slope, flip_filter, ops)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        fu, fd, mask = ctx.saved_tensors
        x_shape, up, down, px0, py0, gain, slope, flip_filter, ops = ctx.args
        dx = ops.backward(dy, fu, fd, mask, up, down, px0, py0, x_shape[2], x_shape[3], gain, slope, flip_filter)
        db = dx.sum([0, 2, 3]) if ctx.needs_input_grad[1] else None
        return (dx if ctx.needs_input_grad[0] else None), db, None, None, None, None, None, None, None, None, None, None
