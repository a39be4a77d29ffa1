"""2-D convolution with optional FIR up/downsampling (EG3D's `conv2d_resample`).

The result equals upfirdn2d-upsample -> conv2d -> upfirdn2d-downsample; cheaper equivalent orders
(strided or transposed convolutions) are picked where the shapes allow.
"""

import math
from typing import Optional

import torch

from torch_utils import misc
from torch_utils.ops import conv2d_gradfix, upfirdn2d
from torch_utils.ops.upfirdn2d import Padding, _get_filter_size, _parse_padding


def _conv2d_wrapper(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding=0, groups: int = 1,
                    transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """conv2d (or its transpose) where flip_weight=False means a true convolution (taps flipped)."""
    kh, kw = w.shape[2:]
    if not flip_weight and (kw > 1 or kh > 1):
        w = w.flip([2, 3])
    op = conv2d_gradfix.conv_transpose2d if transpose else conv2d_gradfix.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """(Cout, Cin/groups, kh, kw) conv weight -> (Cin, Cout/groups, kh, kw) conv_transpose2d weight."""
    out_channels, in_per_group, kh, kw = w.shape
    if groups == 1:
        return w.transpose(0, 1)
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    return w.reshape(groups * in_per_group, out_channels // groups, kh, kw)


def _check_args(x: torch.Tensor, w: torch.Tensor, up: int, down: int, groups: int) -> None:
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        raise ValueError(f'conv2d_resample: w must be (out_channels, in_channels/groups, kh, kw), got '
                         f'{tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}')
    if w.dtype != x.dtype:
        raise ValueError(f'conv2d_resample: w has dtype {w.dtype} but x has {x.dtype}')
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != w.shape[1] * groups:
        raise ValueError(f'conv2d_resample: x must be (N, {w.shape[1] * groups}, H, W) for w of shape '
                         f'{tuple(w.shape)} and groups={groups}, got {tuple(x.shape)}')
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f'conv2d_resample: up and down must be ints >= 1, got up={up}, down={down}')
    if not (isinstance(groups, int) and groups >= 1 and w.shape[0] % groups == 0):
        raise ValueError(f'conv2d_resample: groups={groups} must be an int >= 1 dividing out_channels={w.shape[0]}')


# CPU inference of NCHW activations computes outputs larger than this in bands of rows (see _in_row_bands),
# of at least this many rows each (every band re-reads a few rows of input beyond its own). Channels-last
# activations run in one call: oneDNN reads and writes NHWC as stored, so there are no layout copies to bound.
INFERENCE_BAND_BYTES = 16 * 2 ** 20
INFERENCE_BAND_MIN_ROWS = 64


def _in_row_bands(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor], up: int, padding: Padding,
                  groups: int, flip_weight: bool, flip_filter: bool, out_height: int, bands: int) -> torch.Tensor:
    """conv2d_resample (down=1) in `bands` bands of output rows, written into one output tensor.

    oneDNN copies the input and output of a CPU convolution into its own blocked layout; in bands,
    those copies (and the up path's unfiltered intermediate) cover one band instead of the whole
    image. Each band runs the same computation on the input rows it needs plus a margin (more than
    the kernel and filter reach) and keeps only rows that saw no band edge, so every output row is
    computed from the same numbers as in one call.
    """
    kh = w.shape[2]
    _, fh = _get_filter_size(f)
    py0 = _parse_padding(padding)[2]
    step = math.ceil(out_height / bands)
    out = None
    for row0 in range(0, out_height, step):
        row1 = min(row0 + step, out_height)
        # Output rows [row0, row1) read upsampled rows [row0 - py0 - (fh - 1), row1 - py0 + (kh - 1) + (fh - 1)).
        first = max((row0 - py0 - fh + 1) // up, 0)
        last = min(-(-(row1 - py0 + kh + fh - 2) // up), x.shape[2])
        band = _conv2d_resample(x[:, :, first:last], w, f, up, 1, padding, groups, flip_weight, flip_filter)
        if out is None:
            out = band.new_empty([band.shape[0], band.shape[1], out_height, band.shape[3]])
        out[:, :, row0:row1] = band[:, :, row0 - up * first:row1 - up * first]
        del band
    misc.release_freed_cpu_memory()  # the bands' temporaries, which glibc would keep in the heap
    return out


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1,
                    down: int = 1, padding: Padding = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """Convolve (N, Cin, H, W) with (Cout, Cin/groups, kh, kw), upsampling/downsampling with FIR filter f.

    Args:
        f: low-pass filter from `upfirdn2d.setup_filter` (None = box of size 1), used when up/down > 1.
        up, down: integer resampling factors.
        padding: padding of the upsampled image, int / [x, y] / [x0, x1, y0, y1].
        flip_weight: True = correlation (torch's conv2d), False = convolution.
        flip_filter: passed to upfirdn2d.
    Returns:
        (N, Cout, H', W'). CPU inference (no gradient) of a large NCHW output runs in bands of rows (same numbers).
    """
    _check_args(x, w, up, down, groups)
    if down == 1 and x.device.type == 'cpu' and not misc.is_channels_last(x) and not misc.needs_grad(x, w):
        px0, px1, py0, py1 = _parse_padding(padding)
        out_height = x.shape[2] * up + py0 + py1 - w.shape[2] + 1
        out_width = x.shape[3] * up + px0 + px1 - w.shape[3] + 1
        out_bytes = x.shape[0] * w.shape[0] * out_height * out_width * x.element_size()
        bands = min(math.ceil(out_bytes / INFERENCE_BAND_BYTES), max(out_height // INFERENCE_BAND_MIN_ROWS, 1))
        if bands > 1:
            return _in_row_bands(x, w, f, up, padding, groups, flip_weight, flip_filter, out_height, bands)
    return _conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter)


def _conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor], up: int, down: int,
                     padding: Padding, groups: int, flip_weight: bool, flip_filter: bool) -> torch.Tensor:
    """conv2d_resample after the argument checks, in one call."""
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Padding that centres the resampling filter.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel: resampling commutes with the convolution, so run it on the smaller tensor.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)

    # Downsampling only: filter, then a strided convolution skips the discarded pixels.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d_wrapper(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: a strided transposed convolution does zero insertion and convolution at once.
    if up > 1:
        w = _transpose_weight(w, groups)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        # Padding the transposed convolution can absorb (it crops its output symmetrically).
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d_wrapper(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
                            flip_weight=not flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                                flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric non-negative padding: conv2d pads by itself.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d_wrapper(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case: pad/crop with upfirdn2d, then convolve.
    x = upfirdn2d.upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)
