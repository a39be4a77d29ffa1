"""Straightforward numpy definitions of the ops, written from their mathematical description."""

import numpy as np


def upfirdn2d_np(x, f, up=(1, 1), down=(1, 1), padding=(0, 0, 0, 0), flip_filter=False, gain=1.0):
    """x (N, C, H, W), f (fw,) separable or (fh, fw); up/down (x, y); padding (x0, x1, y0, y1)."""
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    n, c, h, w = x.shape
    upx, upy = up
    u = np.zeros([n, c, h * upy, w * upx])
    u[:, :, ::upy, ::upx] = x
    px0, px1, py0, py1 = padding
    # Index the padded/cropped image through a coordinate map instead of np.pad + slicing.
    hh, ww = u.shape[2] + py0 + py1, u.shape[3] + px0 + px1
    p = np.zeros([n, c, hh, ww])
    for i in range(hh):
        for j in range(ww):
            si, sj = i - py0, j - px0
            if 0 <= si < u.shape[2] and 0 <= sj < u.shape[3]:
                p[:, :, i, j] = u[:, :, si, sj]
    fh, fw = f.shape
    kernel = f if flip_filter else f[::-1, ::-1]  # Convolution = correlation with the flipped taps.
    out = np.zeros([n, c, hh - fh + 1, ww - fw + 1])
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum('ncij,ij->nc', p[:, :, i:i + fh, j:j + fw], kernel)
    return out[:, :, ::down[1], ::down[0]]


def leaky_relu_np(x, slope):
    return np.where(x >= 0, x, x * slope)
