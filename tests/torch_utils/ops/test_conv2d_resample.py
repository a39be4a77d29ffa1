"""conv2d_resample: every fast path equals the plain upsample -> conv -> downsample composition (with the
compiled upfirdn2d), EG3D's outputs, derivatives to second order, bad input and banded CPU inference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.torch_utils.ops.parity import assert_close
from torch_utils.ops import conv2d_resample, upfirdn2d


def composed(x, w, f, up, down, padding, groups, flip_weight):
    """The definition: upsample with f (gain up**2), convolve, then downsample with f."""
    fw, fh = (f.shape[-1], f.shape[0]) if f is not None else (1, 1)
    px0, px1, py0, py1 = padding
    if up > 1:
        px0, px1, py0, py1 = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2,
                              py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    x = upfirdn2d.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, impl='ref')
    x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, impl='ref')
    return x


# (kernel size, up, down, padding, groups, flip_weight): every path of _conv2d_resample once, with
# groups, both weight orientations and asymmetric or negative padding spread over them.
CASES = {
    '1x1_down': (1, 1, 2, 0, 1, True),
    '1x1_up_groups': (1, 2, 1, [1, 0, 2, 1], 2, False),
    '1x1_up_down': (1, 2, 2, 1, 2, False),
    'strided_down_groups': (3, 1, 2, 1, 2, False),
    'strided_down_asym': (3, 1, 2, [1, 0, 2, 1], 1, True),
    'transposed_up_groups': (3, 2, 1, 1, 2, True),
    'transposed_up_asym': (3, 2, 1, [1, 0, 2, 1], 1, False),
    'up_and_down': (3, 2, 2, 0, 1, True),
    'plain_symmetric_groups': (3, 1, 1, 1, 2, False),
    'plain_asym': (3, 1, 1, [1, 0, 2, 1], 1, True),
    'plain_negative_crop': (3, 1, 1, [-1, 2, 1, 0], 1, False),
}


@pytest.mark.parametrize('case', CASES)
def test_matches_composition(case):
    k, up, down, padding, groups, flip_weight = CASES[case]
    gen = torch.Generator().manual_seed(list(CASES).index(case))
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, generator=gen)
    w = torch.randn(6, 4 // groups, k, k + (k > 1), dtype=torch.float64, generator=gen)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    pad4 = padding if isinstance(padding, list) else [padding] * 4
    y = conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                        flip_weight=flip_weight)
    expected = composed(x, w, f, up, down, pad4, groups, flip_weight)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-9, atol=1e-9)


def test_matches_eg3d_fixtures(eg3d_ops):
    x, w, f = eg3d_ops['upfirdn2d_x'], eg3d_ops['conv_w'], eg3d_ops['filter_1331']
    assert_close(conv2d_resample.conv2d_resample(x, w, f=f, up=2, padding=1), eg3d_ops['conv2d_resample_up2'], 1e-4)
    assert_close(conv2d_resample.conv2d_resample(x, w, f=f, down=2, padding=1), eg3d_ops['conv2d_resample_down2'], 1e-4)
    y = conv2d_resample.conv2d_resample(torch.cat([x, x], 1), eg3d_ops['conv_w_groups'], padding=1, groups=2)
    assert_close(y, eg3d_ops['conv2d_resample_groups'], 1e-4)


@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2)])
def test_gradcheck(up, down):
    gen = torch.Generator().manual_seed(up + 2 * down)
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(2, 2, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 2, 1])

    def fn(x, w):
        return conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=1)
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_bad_input():
    with pytest.raises(ValueError, match=r'x must be \(N, 6, H, W\)'):
        conv2d_resample.conv2d_resample(torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 1, 1), groups=2)
    with pytest.raises(ValueError, match='up and down'):
        conv2d_resample.conv2d_resample(torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 1, 1), up=0)


@pytest.mark.parametrize('k,up,groups,padding', [(3, 2, 2, 1), (1, 1, 1, 0), (3, 1, 2, [1, 0, 2, 1])])
def test_inference_in_bands_equals_one_call(monkeypatch, k, up, groups, padding):
    """CPU inference of a large output runs in bands of rows; with small integers every product and sum is
    exact in float32, so any row that saw a band edge (too small a margin) would differ."""
    gen = torch.Generator().manual_seed(k + 10 * up + 100 * groups)
    x = torch.randint(-3, 4, (2, 4, 23, 21), generator=gen).float()
    w = torch.randint(-3, 4, (6, 4 // groups, k, k), generator=gen).float()
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    kwargs = dict(f=f, up=up, padding=padding, groups=groups, flip_weight=(up == 1))
    one_call = conv2d_resample.conv2d_resample(x.requires_grad_(True), w, **kwargs).detach()  # autograd: never banded
    x.requires_grad_(False)
    calls = []
    original = conv2d_resample._conv2d_resample
    monkeypatch.setattr(conv2d_resample, '_conv2d_resample', lambda x, *a: calls.append(x.shape[2]) or original(x, *a))
    monkeypatch.setattr(conv2d_resample, 'INFERENCE_BAND_BYTES', -(-one_call.numel() * 4 // 5))  # 5 bands
    monkeypatch.setattr(conv2d_resample, 'INFERENCE_BAND_MIN_ROWS', 2)
    with torch.no_grad():
        banded = conv2d_resample.conv2d_resample(x, w, **kwargs)
    assert len(calls) == 5 and max(calls) < x.shape[2]  # five bands, each reading part of the input
    assert banded.shape == one_call.shape
    assert torch.equal(banded, one_call)


def test_channels_last_inference_runs_in_one_call(monkeypatch):
    """NHWC activations are convolved as stored (no oneDNN layout copies to bound): one call, NHWC result."""
    x = torch.randn(1, 4, 23, 21).to(memory_format=torch.channels_last)
    w = torch.randn(6, 4, 3, 3)
    calls = []
    original = conv2d_resample._conv2d_resample
    monkeypatch.setattr(conv2d_resample, '_conv2d_resample', lambda x, *a: calls.append(x.shape[2]) or original(x, *a))
    monkeypatch.setattr(conv2d_resample, 'INFERENCE_BAND_BYTES', 64)
    monkeypatch.setattr(conv2d_resample, 'INFERENCE_BAND_MIN_ROWS', 2)
    with torch.no_grad():
        y = conv2d_resample.conv2d_resample(x, w, f=upfirdn2d.setup_filter([1, 3, 3, 1]), up=2, padding=1)
    assert calls == [23] and y.is_contiguous(memory_format=torch.channels_last)
