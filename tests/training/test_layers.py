"""StyleGAN2 layers: modulated convolution against EG3D's outputs (ops.npz) and its algebra, and
input checks of the synthesis layer."""

from pathlib import Path

import numpy as np
import pytest
import torch

from training.layers import SynthesisLayer, modulated_conv2d

OPS = Path(__file__).resolve().parents[1] / 'fixtures' / 'eg3d' / 'ops.npz'


@pytest.fixture(scope='module')
def ops():
    return dict(np.load(OPS, allow_pickle=False))


@pytest.mark.parametrize('fused', [False, True])
def test_modulated_conv2d_matches_eg3d(ops, fused):
    x, w, s = (torch.from_numpy(ops[k]) for k in ('upfirdn2d_x', 'conv_w', 'modconv_styles'))
    f = torch.from_numpy(ops['filter_1331'])
    out = modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f, demodulate=True, fused_modconv=fused)
    np.testing.assert_allclose(out.numpy(), ops['modconv_fused_up2' if fused else 'modconv_demod_up2'],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('fused', [False, True])
def test_modulated_conv2d_without_demodulation(ops, fused):
    x, w, s = (torch.from_numpy(ops[k]) for k in ('upfirdn2d_x', 'conv_w', 'modconv_styles'))
    out = modulated_conv2d(x, w, s, padding=1, demodulate=False, fused_modconv=fused)
    np.testing.assert_allclose(out.numpy(), ops['modconv_nodemod'], atol=1e-4, rtol=1e-4)
    # Without demodulation, modulation is the plain convolution of the style-scaled input.
    ref = torch.nn.functional.conv2d(x * s[:, :, None, None], w, padding=1)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)


def test_demodulation_gives_unit_norm_weights():
    torch.manual_seed(0)
    w, s = torch.randn(4, 5, 3, 3), torch.rand(2, 5) + 0.5
    energy = torch.zeros(2, 4)
    for i in range(5):  # an impulse in input channel i reads out the effective weights [:, :, i]
        x = torch.zeros(2, 5, 7, 7)
        x[:, i, 3, 3] = 1
        energy += modulated_conv2d(x, w, s, padding=1)[:, :, 2:5, 2:5].square().sum(dim=[2, 3])
    # Every output channel's effective weights (over inputs and taps) have unit L2 norm.
    np.testing.assert_allclose(energy.numpy(), np.ones((2, 4)), rtol=1e-5)


def test_synthesis_layer_rejects_bad_input():
    layer = SynthesisLayer(4, 4, w_dim=8, resolution=8)
    with pytest.raises(ValueError, match=r'x must have shape \(N, 4, 8, 8\)'):
        layer(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8))
    with pytest.raises(ValueError, match='noise_mode'):
        layer(torch.zeros(1, 4, 8, 8), torch.zeros(1, 8), noise_mode='fixed')
