"""Upsample, FIR-filter, downsample (EG3D's `upfirdn2d`) and the resampling helpers built on it.

Filters are (fh, fw) tensors (non-separable) or (fw,) tensors applied along both axes (separable).
Padding is an int, [x, y] or [x0, x1, y0, y1]; negative values crop.
"""

import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import custom_ops

Padding = Union[int, Sequence[int]]
Scaling = Union[int, Sequence[int]]


def _ints(value: Union[int, Sequence[int]]) -> List[int]:
    """An int as [value, value]; a sequence as its ints."""
    return [int(v) for v in ([value, value] if isinstance(value, (int, np.integer)) else value)]


def _parse_scaling(scaling: Scaling, name: str) -> Tuple[int, int]:
    """int or [sx, sy] -> (sx, sy), each >= 1."""
    scaling = _ints(scaling)
    if len(scaling) != 2 or min(scaling) < 1:
        raise ValueError(f'{name} must be an int >= 1 or [x, y] of ints >= 1, got {scaling}')
    return scaling[0], scaling[1]


def _parse_padding(padding: Padding) -> Tuple[int, int, int, int]:
    """int, [px, py] or [px0, px1, py0, py1] -> (px0, px1, py0, py1)."""
    padding = _ints(padding)
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    if len(padding) != 4:
        raise ValueError(f'padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}')
    return padding[0], padding[1], padding[2], padding[3]


def _get_filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(fw, fh) of a filter; None is the 1x1 identity."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError(f'filter must be a 1-D (separable) or 2-D tensor, got '
                         f'{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}')
    fw = f.shape[-1]
    fh = f.shape[0]
    return int(fw), int(fh)


def setup_filter(f, device=torch.device('cpu'), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: Optional[bool] = None) -> torch.Tensor:
    """Turn filter taps into the float32 tensor the ops take.

    Args:
        f: None (identity), a scalar, 1-D taps or a 2-D array.
        normalize: scale so the taps sum to 1.
        flip_filter: flip the taps (convolution instead of correlation).
        gain: overall gain of the 2-D filter (split as sqrt(gain) per axis for separable filters).
        separable: keep 1-D taps as a separable filter; None = only from 8 taps on (EG3D's rule,
            because torch's depthwise 2-D conv is faster than two 1-D passes for short filters).
    Returns:
        (fw,) separable or (fh, fw) non-separable filter on `device`.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2):
        raise ValueError(f'filter taps must be a scalar, 1-D or 2-D, got shape {tuple(f.shape)}')
    if f.numel() == 0:
        raise ValueError('filter taps must not be empty')
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f'a {f.ndim}-D filter cannot be made {"separable" if separable else "non-separable"}')
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _check_args(x: torch.Tensor, f: Optional[torch.Tensor], impl: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'upfirdn2d: x must be a 4-D tensor (N, C, H, W), got '
                         f'{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}')
    if f is not None:
        _get_filter_size(f)
        if f.dtype != torch.float32:
            raise ValueError(f'upfirdn2d: filter must be float32 (see setup_filter), got {f.dtype}')
    if impl not in ('ref', 'cuda'):
        raise ValueError(f'upfirdn2d: impl must be "ref" or "cuda", got "{impl}"')


def output_size(in_size: int, up: int, down: int, pad0: int, pad1: int, ftaps: int) -> int:
    """Length of one upfirdn2d output axis."""
    return (in_size * up + pad0 + pad1 - ftaps) // down + 1


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up: Scaling = 1, down: Scaling = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1,
              impl: str = 'cuda') -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop), FIR-filter, downsample by keeping every down-th pixel.

    Args:
        x: (N, C, H, W) input.
        f: (fw,) separable or (fh, fw) float32 filter from `setup_filter`, or None (identity).
        up, down: int or [x, y] integer factors.
        padding: int, [x, y] or [x0, x1, y0, y1] applied after upsampling; negative crops.
        flip_filter: False = convolution (taps flipped), True = correlation.
        gain: overall scale of the result.
        impl: 'cuda' = compiled kernel for the tensor's device when available, else the reference;
            'ref' = pure PyTorch.
    Returns:
        (N, C, (H*upy + py0 + py1 - fh) // downy + 1, (W*upx + px0 + px1 - fw) // downx + 1).
    """
    _check_args(x, f, impl)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    up, down, padding = _parse_scaling(up, 'up'), _parse_scaling(down, 'down'), _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    out_h = output_size(x.shape[2], up[1], down[1], padding[2], padding[3], fh)
    out_w = output_size(x.shape[3], up[0], down[0], padding[0], padding[1], fw)
    if out_h < 1 or out_w < 1:
        raise ValueError(f'upfirdn2d: input {tuple(x.shape)} with up={up}, down={down}, padding={padding} and a '
                         f'{fh}x{fw} filter gives an empty output ({out_h}x{out_w})')
    if impl == 'cuda':
        plugin = _plugin()
        if custom_ops.handles(plugin, x) and not f.requires_grad:
            return _Upfirdn2dCompiled.apply(x, f, up, down, padding, flip_filter, gain, plugin.ops)
    return _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)


def _plugin():
    return custom_ops.get_plugin('upfirdn2d_plugin', os.path.dirname(__file__), cpp_sources=['upfirdn2d.cpp'],
                                 cuda_sources=['upfirdn2d.cu'],
                                 headers=['upfirdn2d.h', 'upfirdn2d_cpu.h', 'cuda_half_io.h'])


def _upfirdn2d_ref(x: torch.Tensor, f: torch.Tensor, up: Tuple[int, int], down: Tuple[int, int],
                   padding: Tuple[int, int, int, int], flip_filter: bool, gain: float) -> torch.Tensor:
    """Pure-PyTorch upfirdn2d with torch's pad / depthwise conv2d; up/down (x, y), padding (x0, x1, y0, y1)."""
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = padding
    n, c, h, w = x.shape

    # Zero insertion: each pixel followed by up-1 zeros along each axis.
    x = x.reshape([n, c, h, 1, w, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([n, c, h * upy, w * upx])

    # Pad the positive sides, then crop the negative ones.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    # conv2d correlates, so flip the taps unless a correlation was asked for.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[np.newaxis, np.newaxis].repeat([c, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=c)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=c)
        x = F.conv2d(x, f.unsqueeze(3), groups=c)
    return x[:, :, ::downy, ::downx]


class _Upfirdn2dCompiled(torch.autograd.Function):
    """Compiled upfirdn2d. Its adjoint is another upfirdn2d (factors swapped, filter flipped), so the
    backward calls this same function and is differentiable to any order."""

    @staticmethod
    def forward(ctx, x, f, up, down, padding, flip_filter, gain, ops):
        ctx.save_for_backward(f)
        ctx.args = (x.shape, up, down, padding, flip_filter, gain, ops)
        return ops.upfirdn2d(x, f, up[0], up[1], down[0], down[1], *padding, flip_filter, float(gain))

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        x_shape, up, down, padding, flip_filter, gain, ops = ctx.args
        fw, fh = _get_filter_size(f)
        px0, px1, py0, py1 = padding
        in_h, in_w = x_shape[2], x_shape[3]
        out_h, out_w = dy.shape[2], dy.shape[3]
        # Padding that maps every output position back onto the input pixels that fed it.
        p = [fw - px0 - 1, in_w * up[0] - out_w * down[0] + px0 - up[0] + 1,
             fh - py0 - 1, in_h * up[1] - out_h * down[1] + py0 - up[1] + 1]
        dx = (_Upfirdn2dCompiled.apply(dy, f, down, up, p, not flip_filter, gain, ops) if ctx.needs_input_grad[0]
              else None)
        return dx, None, None, None, None, None, None, None


def filter2d(x: torch.Tensor, f: Optional[torch.Tensor], padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1, impl: str = 'cuda') -> torch.Tensor:
    """FIR-filter keeping the size of `x` (plus `padding` on each side)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x: torch.Tensor, f: Optional[torch.Tensor], up: Scaling = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1, impl: str = 'cuda') -> torch.Tensor:
    """Upsample by `up` with an interpolation filter: (N, C, H, W) -> (N, C, H*upy, W*upx) (+ padding)."""
    upx, upy = _parse_scaling(up, 'up')
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    # Centre the filter on the inserted zeros; the gain up**2 restores the mean that zero insertion dilutes.
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x: torch.Tensor, f: Optional[torch.Tensor], down: Scaling = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1, impl: str = 'cuda') -> torch.Tensor:
    """Low-pass and downsample by `down`: (N, C, H, W) -> (N, C, H//downy, W//downx) (+ padding)."""
    downx, downy = _parse_scaling(down, 'down')
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
