"""StyleGAN2 layers and networks: modulated convolution against EG3D's outputs (ops.npz), the
mapping network's arithmetic, and synthesis configurations other than the fixtures'."""

from pathlib import Path

import numpy as np
import pytest
import torch

from training import networks_stylegan2 as nets
from training.layers import modulated_conv2d

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


def test_mapping_network_arithmetic():
    torch.manual_seed(0)
    mapping = nets.MappingNetwork(z_dim=8, c_dim=3, w_dim=6, num_ws=5, num_layers=2, lr_multiplier=0.5)
    z, c = torch.randn(4, 8), torch.randn(4, 3)
    # Reference: pixel-norm z and the embedded c, concatenate, two lrelu dense layers (gain sqrt 2).
    def dense(layer, x, act):
        y = x @ (layer.weight * layer.weight_gain).t() + layer.bias * layer.bias_gain
        return torch.nn.functional.leaky_relu(y, 0.2) * np.sqrt(2) if act else y
    norm = lambda v: v / v.square().mean(1, keepdim=True).add(1e-8).sqrt()
    x = torch.cat([norm(z), norm(dense(mapping.embed, c, False))], 1)
    w = dense(mapping.fc1, dense(mapping.fc0, x, True), True)
    ws = mapping(z, c)
    assert ws.shape == (4, 5, 6)
    np.testing.assert_allclose(ws.detach().numpy(), w[:, None].expand(4, 5, 6).detach().numpy(), atol=1e-5)
    # update_emas moves w_avg towards the batch mean by 1 - beta.
    mapping(z, c, update_emas=True)
    np.testing.assert_allclose(mapping.w_avg.numpy(), (w.mean(0) * (1 - 0.998)).detach().numpy(), atol=1e-6)


@pytest.mark.parametrize('resolution,channel_base,channel_max,architecture', [
    (16, 64, 16, 'skip'), (32, 256, 8, 'resnet'), (8, 32, 32, 'orig')])
def test_synthesis_network_configurations(resolution, channel_base, channel_max, architecture):
    torch.manual_seed(0)
    G = nets.Generator(z_dim=4, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=5,
                       channel_base=channel_base, channel_max=channel_max, num_fp16_res=2,
                       architecture=architecture, mapping_kwargs={'num_layers': 1})
    log2 = int(np.log2(resolution))
    assert G.num_ws == 2 * (log2 - 1)  # two convs per block (one for 4x4) plus the last toRGB
    for res in G.synthesis.block_resolutions:
        assert getattr(G.synthesis, f'b{res}').conv1.weight.shape[0] == min(channel_base // res, channel_max)
    z = torch.randn(3, 4)
    img = G(z, None, noise_mode='const', fused_modconv=True)
    assert img.shape == (3, 5, resolution, resolution) and img.dtype == torch.float32
    # The fused (grouped) and unfused modulated convolutions compute the same image.
    unfused = G(z, None, noise_mode='const', fused_modconv=False)
    np.testing.assert_allclose(img.detach().numpy(), unfused.detach().numpy(), atol=1e-4, rtol=1e-4)


def test_no_up_block_keeps_the_resolution():
    torch.manual_seed(0)
    block = nets.SynthesisBlock(6, 4, w_dim=8, resolution=16, img_channels=3, is_last=True, up=1)
    ws, img_in = torch.randn(2, 3, 8), torch.randn(2, 3, 16, 16)
    x, img = block(torch.randn(2, 6, 16, 16), img_in.clone(), ws, noise_mode='none')
    assert x.shape == (2, 4, 16, 16) and img.shape == (2, 3, 16, 16)
    # The running image is not upsampled: the block adds its toRGB (third w) to it as is.
    expected = img_in + block.torgb(x, ws[:, 2])
    np.testing.assert_allclose(img.detach().numpy(), expected.detach().numpy(), atol=1e-6)


def test_layers_reject_bad_shapes():
    layer = nets.SynthesisLayer(4, 4, w_dim=8, resolution=8)
    with pytest.raises(ValueError, match=r'x must have shape \(N, 4, 8, 8\)'):
        layer(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8))
    with pytest.raises(ValueError, match='noise_mode'):
        layer(torch.zeros(1, 4, 8, 8), torch.zeros(1, 8), noise_mode='fixed')
    synthesis = nets.SynthesisNetwork(w_dim=8, img_resolution=8, img_channels=3, channel_base=32, channel_max=8)
    with pytest.raises(ValueError, match=r'ws must have shape \(N, 4, 8\)'):
        synthesis(torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match='power of two'):
        nets.SynthesisNetwork(w_dim=8, img_resolution=12, img_channels=3)


def test_minibatch_std_layer():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, 3)
    out = nets.MinibatchStdLayer(group_size=2, num_channels=2)(x)
    assert out.shape == (4, 8, 3, 3)
    np.testing.assert_array_equal(out[:, :6].numpy(), x.numpy())
    # Sample n is grouped with sample n + N/G; each of the 2 extra maps is the mean std of 3 channels.
    groups = x.reshape(2, 2, 2, 3, 3, 3)  # [G, n, F, c, H, W]
    std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n, F]
    np.testing.assert_allclose(out[:2, 6:, 0, 0].numpy(), std.numpy(), rtol=1e-5)
    np.testing.assert_allclose(out[2:, 6:, 1, 2].numpy(), std.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match='multiple of the minibatch-std group size'):
        nets.MinibatchStdLayer(group_size=4)(torch.randn(6, 2, 3, 3))


@pytest.mark.parametrize('architecture', ['skip', 'orig', 'resnet'])
def test_discriminator_configurations(architecture):
    torch.manual_seed(0)
    D = nets.Discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture=architecture, channel_base=64,
                           channel_max=16, block_kwargs={'freeze_layers': 2}, epilogue_kwargs={'mbstd_group_size': 2})
    assert D.b16.fromrgb.weight.shape == (4, 3, 1, 1)
    # Freeze-D: the first two layers keep their weights as buffers, later layers are trainable.
    params = dict(D.named_parameters())
    assert 'b16.fromrgb.weight' not in params and 'b16.conv0.weight' not in params
    assert 'b16.conv1.weight' in params and 'b16.conv0.weight' in D.state_dict()
    img = torch.randn(4, 3, 16, 16)
    logits = D(img, None)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    # Without conditioning the logits do not depend on which other samples share the batch order
    # beyond the minibatch-std groups: swapping whole groups permutes the outputs.
    swapped = D(img[[1, 0, 3, 2]], None)
    np.testing.assert_allclose(swapped.detach().numpy(), logits[[1, 0, 3, 2]].detach().numpy(), rtol=1e-5, atol=1e-6)
