"""upfirdn2d: EG3D's outputs, a naive numpy definition, the compiled kernels against the reference
(values and gradients), the compiled derivatives to second order, the helpers, bad input and
channels-last storage."""

import numpy as np
import pytest
import torch

from tests.torch_utils.ops.parity import assert_close, assert_compiled_equals_reference
from torch_utils.ops import upfirdn2d

IMPLS = ['ref', 'cuda']


def upfirdn2d_np(x, f, up, down, padding, flip_filter, gain):
    """The definition, in numpy loops: x (N, C, H, W); f (fw,) separable or (fh, fw); up/down (x, y);
    padding (x0, x1, y0, y1). Zero insertion, pad or crop, convolve with f * gain, keep every down-th."""
    f = np.asarray(f, dtype=np.float64)
    f = (np.outer(f, f) if f.ndim == 1 else f) * gain
    n, c, h, w = x.shape
    u = np.zeros([n, c, h * up[1], w * up[0]])
    u[:, :, ::up[1], ::up[0]] = x
    px0, px1, py0, py1 = padding
    p = np.zeros([n, c, u.shape[2] + py0 + py1, u.shape[3] + px0 + px1])
    for i in range(p.shape[2]):  # a coordinate map, so that negative padding crops
        for j in range(p.shape[3]):
            if 0 <= i - py0 < u.shape[2] and 0 <= j - px0 < u.shape[3]:
                p[:, :, i, j] = u[:, :, i - py0, j - px0]
    fh, fw = f.shape
    kernel = f if flip_filter else f[::-1, ::-1]  # convolution = correlation with the flipped taps
    out = np.zeros([n, c, p.shape[2] - fh + 1, p.shape[3] - fw + 1])
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum('ncij,ij->nc', p[:, :, i:i + fh, j:j + fw], kernel)
    return out[:, :, ::down[1], ::down[0]]


def test_setup_filter_matches_eg3d(eg3d_ops):
    assert_close(upfirdn2d.setup_filter([1, 3, 3, 1]), eg3d_ops['filter_1331'], 1e-6)
    assert_close(upfirdn2d.setup_filter([1, 2, 1]), eg3d_ops['filter_121_nonsep'], 1e-6)
    # From 8 taps on, 1-D taps stay separable; shorter ones become their outer product.
    assert upfirdn2d.setup_filter(np.ones(8)).shape == (8,)
    assert upfirdn2d.setup_filter(np.ones(7)).shape == (7, 7)
    assert_close(upfirdn2d.setup_filter(np.ones(8), gain=4), torch.full([8], 2 / 8), 1e-6)


@pytest.mark.parametrize('impl', IMPLS)
def test_matches_eg3d_fixtures(eg3d_ops, impl):
    x, f = eg3d_ops['upfirdn2d_x'], eg3d_ops['filter_1331']
    assert_close(upfirdn2d.upsample2d(x, f, impl=impl), eg3d_ops['upfirdn2d_up2'], 1e-4)
    assert_close(upfirdn2d.downsample2d(x, f, impl=impl), eg3d_ops['upfirdn2d_down2'], 1e-4)
    assert_close(upfirdn2d.filter2d(x, f, padding=1, impl=impl), eg3d_ops['upfirdn2d_filter_pad1'], 1e-4)
    y = upfirdn2d.upfirdn2d(x, eg3d_ops['filter_121_nonsep'], up=3, down=2, padding=[2, 1, 0, 3], flip_filter=True,
                            gain=1.5, impl=impl)
    assert_close(y, eg3d_ops['upfirdn2d_custom'], 1e-4)


# (x shape, filter taps: (fw,) separable or [fh, fw], up (x, y), down (x, y), padding (x0, x1, y0, y1),
# flip_filter, gain): the corners of the kernels' geometry, forward and backward (whose padding is
# derived from all of these).
CASES = {
    'up2_sep_4tap': ([2, 3, 5, 7], [1, 3, 3, 1], (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0),
    'down2_sep_odd_size': ([1, 2, 9, 7], [1, 3, 3, 1], (1, 1), (2, 2), (1, 1, 1, 1), False, 1.0),
    'up3_down2_nonsep_flip': ([2, 3, 4, 6], [[1, 2, 0.5], [0.3, -1, 2], [0, 1, 1]], (3, 3), (2, 2), (2, 1, 0, 3),
                              True, 1.5),
    'xy_factors_differ': ([1, 2, 6, 5], [0.5, 1, -0.5, 2, 1], (2, 1), (1, 3), (1, 3, 2, 0), False, 0.7),
    'negative_padding_crops': ([2, 1, 8, 9], [[1, 2], [3, 4], [5, 6]], (1, 2), (2, 1), (-2, 1, 3, -1), True, 2.0),
    'filter_wider_than_input': ([1, 3, 2, 1], [1, 2, 3, 4, 5, 4, 3], (1, 1), (1, 1), (6, 3, 2, 5), False, 1.0),
    'one_pixel_up3': ([2, 2, 1, 1], [1, 1, 1], (3, 3), (2, 1), (2, 2, 2, 2), False, 9.0),
    'single_tap_gain': ([1, 4, 3, 5], [2.0], (1, 2), (3, 1), (0, 2, 1, 0), True, 0.5),
}


def _case(name):
    shape, taps, up, down, padding, flip, gain = CASES[name]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(list(CASES).index(name)))
    return x, torch.tensor(taps, dtype=torch.float32), dict(up=list(up), down=list(down), padding=list(padding),
                                                            flip_filter=flip, gain=gain)


@pytest.mark.parametrize('case', CASES)
def test_reference_matches_definition_and_compiled_matches_reference(case, device):
    x, f, kwargs = _case(case)
    expected = upfirdn2d_np(x.double().numpy(), f.numpy(), kwargs['up'], kwargs['down'], kwargs['padding'],
                            kwargs['flip_filter'], kwargs['gain'])
    assert_close(upfirdn2d.upfirdn2d(x, f, impl='ref', **kwargs), torch.from_numpy(expected).float(), 1e-5)

    def fn(x, impl='cuda'):
        return upfirdn2d.upfirdn2d(x, f.to(x.device), impl=impl, **kwargs)
    assert_compiled_equals_reference(fn, [x], upfirdn2d._plugin(), device, tol=1e-4)


@pytest.mark.parametrize('separable', [False, True])
def test_compiled_gradients_to_second_order(separable):
    gen = torch.Generator().manual_seed(int(separable))
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 2, 3], separable=separable)

    def fn(x):
        return upfirdn2d.upfirdn2d(x, f, up=[2, 3], down=[3, 2], padding=[2, -1, 1, 2], gain=1.7, impl='cuda')
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_helpers_output_sizes():
    x = torch.zeros([1, 2, 6, 10])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert upfirdn2d.upsample2d(x, f).shape == (1, 2, 12, 20)
    assert upfirdn2d.upsample2d(x, f, up=[3, 2]).shape == (1, 2, 12, 30)
    assert upfirdn2d.downsample2d(x, f).shape == (1, 2, 3, 5)
    assert upfirdn2d.filter2d(x, f).shape == (1, 2, 6, 10)
    assert upfirdn2d.filter2d(x, f, padding=[1, 2]).shape == (1, 2, 10, 12)


def test_identity_filter_and_crop():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    np.testing.assert_array_equal(upfirdn2d.upfirdn2d(x, None, padding=[-1, -2, 0, -1]).numpy(), x[:, :, :4, 1:5])
    np.testing.assert_array_equal(upfirdn2d.upfirdn2d(x, None, down=2).numpy(), x[:, :, ::2, ::2])


def test_bad_input():
    with pytest.raises(ValueError, match='4-D'):
        upfirdn2d.upfirdn2d(torch.zeros(3, 4, 5), None)
    with pytest.raises(ValueError, match='padding'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, padding=[1, 2, 3])
    with pytest.raises(ValueError, match='up'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, up=0)
    with pytest.raises(ValueError, match='empty'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, padding=-2)
    with pytest.raises(ValueError, match='float32'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match='impl'):
        upfirdn2d.upfirdn2d(torch.zeros(1, 1, 4, 4), None, impl='triton')


def test_channels_last_stays_channels_last():
    """An NHWC-stored x is filtered as stored into an NHWC result with the numbers of the NCHW kernel."""
    for name in CASES:
        x, f, kwargs = _case(name)
        if x.shape[2:] == (1, 1):
            continue  # a 1x1 image is stored the same way in both layouts
        x = x.repeat(1, 3, 1, 1)  # at least 3 channels: a real channel vector
        expected = upfirdn2d.upfirdn2d(x, f, **kwargs)
        y = upfirdn2d.upfirdn2d(x.to(memory_format=torch.channels_last), f, **kwargs)
        assert y.is_contiguous(memory_format=torch.channels_last), name
        np.testing.assert_allclose(y.numpy(), expected.numpy(), atol=1e-5, rtol=1e-5, err_msg=name)
