"""StyleGAN2 synthesis network and blocks in configurations other than the fixtures'."""

import numpy as np
import pytest
import torch

from training import networks_stylegan2 as nets


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


def test_synthesis_network_rejects_bad_shapes():
    synthesis = nets.SynthesisNetwork(w_dim=8, img_resolution=8, img_channels=3, channel_base=32, channel_max=8)
    with pytest.raises(ValueError, match=r'ws must have shape \(N, 4, 8\)'):
        synthesis(torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match='power of two'):
        nets.SynthesisNetwork(w_dim=8, img_resolution=12, img_channels=3)


@pytest.mark.parametrize('batch,architecture', [(1, 'skip'), (2, 'skip'), (1, 'resnet')])
def test_cpu_inference_runs_channels_last_with_the_autograd_paths_numbers(batch, architecture):
    """Without autograd on the CPU the blocks keep their activations channels-last (NHWC); the image is
    NCHW and within 1e-5 of the autograd (NCHW) path's."""
    torch.manual_seed(0)
    synthesis = nets.SynthesisNetwork(w_dim=8, img_resolution=32, img_channels=5, channel_base=256,
                                      channel_max=16, architecture=architecture)
    ws = torch.randn(batch, synthesis.num_ws, 8)
    expected = synthesis(ws, noise_mode='const')
    assert expected.requires_grad  # the parameters take gradients: NCHW throughout
    layouts = []
    synthesis.b16.register_forward_hook(lambda module, args, out: layouts.append(out[0].is_contiguous()))
    with torch.no_grad():
        image = synthesis(ws, noise_mode='const')
    assert layouts == [False]  # the block's activations are channels-last ...
    assert image.is_contiguous()  # ... and the image NCHW
    torch.testing.assert_close(image, expected.detach(), rtol=0, atol=1e-5)
