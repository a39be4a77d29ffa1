"""StyleGAN2 layers: modulated convolution against EG3D's outputs (ops.npz) and its algebra, and
input checks of the synthesis layer."""

from pathlib import Path

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act, upfirdn2d
from torch_utils.ops.bias_act import bias_act_inplace_
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


@pytest.mark.parametrize('act,gain,clamp', [('lrelu', np.sqrt(2), None), ('lrelu', 0.5, 0.3), ('linear', 1, None),
                                            ('linear', 2, 1.5)])
def test_bias_act_inplace_matches_bias_act(act, gain, clamp):
    torch.manual_seed(0)
    x, b = torch.randn(2, 5, 6, 7), torch.randn(5)
    expected = bias_act.bias_act(x, b, act=act, gain=gain, clamp=clamp, impl='ref')
    y = x.clone()
    assert bias_act_inplace_(y, b, act, gain, clamp) is y
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="act must be 'linear' or 'lrelu'"):
        bias_act_inplace_(x, b, 'tanh', 1, None)


def test_synthesis_layer_inference_equals_training_path():
    """Without autograd the layer finishes its output in place; the numbers are those of the autograd path."""
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 6, w_dim=8, resolution=16, up=2, conv_clamp=0.5)
    with torch.no_grad():
        layer.bias.normal_()
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    with_grad = layer(x, w, noise_mode='const')
    assert with_grad.requires_grad
    with torch.no_grad():
        without = layer(x, w, noise_mode='const')
    torch.testing.assert_close(without, with_grad.detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('kernel,up,demodulate', [(3, 1, True), (3, 2, True), (1, 1, False)])
def test_fused_modconv_of_channels_last_activations(batch, kernel, up, demodulate):
    """NHWC activations (CPU inference) convolve sample by sample, a 1x1 kernel as a matrix product; the
    numbers are the NCHW grouped convolution's."""
    torch.manual_seed(kernel + up + batch)
    x, w, s = torch.randn(batch, 6, 8, 8), torch.randn(5, 6, kernel, kernel), torch.rand(batch, 6) + 0.5
    noise = torch.randn(batch, 1, 8 * up, 8 * up)
    kwargs = dict(noise=noise, up=up, padding=kernel // 2, resample_filter=upfirdn2d.setup_filter([1, 3, 3, 1]),
                  demodulate=demodulate, flip_weight=(up == 1))
    expected = modulated_conv2d(x, w, s, **kwargs)
    out = modulated_conv2d(x.to(memory_format=torch.channels_last), w, s, **kwargs)
    assert out.is_contiguous(memory_format=torch.channels_last) == (kernel > 1)  # 1x1 (toRGB): NCHW image
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
