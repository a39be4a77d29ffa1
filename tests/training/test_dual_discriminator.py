"""DualDiscriminator: EG3D parity on the tiny reference network, the FFHQ-512 layout, resizing, bad input."""

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils.ops import upfirdn2d
from training.discriminator_blocks import Discriminator
from training.dual_discriminator import DualDiscriminator, SingleDiscriminator, filtered_resizing


def _images(tiny_io):
    return {'image': torch.from_numpy(tiny_io['synthesis_image']),
            'image_raw': torch.from_numpy(tiny_io['synthesis_image_raw'])}


def test_logits_match_eg3d(tiny_D, tiny_io):
    assert isinstance(tiny_D, DualDiscriminator) and tiny_D.img_channels == 6
    logits = tiny_D(_images(tiny_io), torch.from_numpy(tiny_io['c']))
    assert logits.shape == (2, 1)
    np.testing.assert_allclose(logits.numpy(), tiny_io['D_logits'], atol=1e-3, rtol=1e-4)


def test_camera_noise_changes_only_the_conditioning(tiny_config, tiny_io):
    kwargs = dict(tiny_config['D_kwargs'], disc_c_noise=1.0)
    torch.manual_seed(0)
    D = dnnlib.util.construct_class_by_name(**kwargs).eval()
    c = torch.from_numpy(tiny_io['c'])
    torch.manual_seed(5)
    noisy = D(_images(tiny_io), c)
    torch.manual_seed(5)
    c_noisy = c + torch.randn_like(c) * c.std(0) * 1.0
    # The noisy label is no camera any more (D refuses it as input): feed it to the base class directly.
    images = _images(tiny_io)
    raw = filtered_resizing(images['image_raw'], size=images['image'].shape[-1], f=D.resample_filter)
    expected = Discriminator.forward(D, torch.cat([images['image'], raw], 1), c_noisy)
    np.testing.assert_allclose(noisy.detach().numpy(), expected.detach().numpy(), rtol=1e-6)


def test_degenerate_camera_is_refused(tiny_D, tiny_io):
    c = torch.from_numpy(tiny_io['c']).clone()
    c[1, :16] = 0
    with pytest.raises(ValueError, match=r'camera label c\[1\] is not a usable camera: its rotation'):
        tiny_D(_images(tiny_io), c)


def test_filtered_resizing_modes():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    f = torch.ones(4, 4) / 16
    constant = torch.full((1, 3, 8, 8), 0.7)
    for mode in ('antialiased', 'none', 0.3):
        out = filtered_resizing(constant, 16, f, filter_mode=mode)
        assert out.shape == (1, 3, 16, 16)
        np.testing.assert_allclose(out.numpy(), 0.7, atol=1e-6)  # resizing preserves constants
    # Upsampling: antialiasing has nothing to remove, so 'antialiased' equals plain bilinear.
    np.testing.assert_allclose(filtered_resizing(x, 16, f).numpy(), filtered_resizing(x, 16, f, 'none').numpy(),
                               atol=1e-6)
    # 'classic' (FIR up, bilinear, FIR down): constants survive away from the zero-padded border.
    classic = filtered_resizing(constant, 16, upfirdn2d.setup_filter([1, 3, 3, 1]), filter_mode='classic')
    assert classic.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(classic[..., 4:12, 4:12].numpy(), 0.7, atol=1e-6)
    with pytest.raises(ValueError, match='filter_mode'):
        filtered_resizing(x, 16, f, filter_mode='bicubic')


def test_single_discriminator_judges_the_image_alone(tiny_config, tiny_io):
    torch.manual_seed(0)
    kwargs = {k: v for k, v in tiny_config['D_kwargs'].items() if k not in ('class_name', 'disc_c_noise')}
    single = SingleDiscriminator(**kwargs).eval()
    plain = Discriminator(**kwargs).eval()
    plain.load_state_dict(single.state_dict())
    images, c = _images(tiny_io), torch.from_numpy(tiny_io['c'])
    with torch.no_grad():
        np.testing.assert_array_equal(single(images, c).numpy(), plain(images['image'], c).numpy())


def test_ffhq512_layout(ffhq512):
    D = dnnlib.util.construct_class_by_name(**ffhq512['D_kwargs'])
    assert {k: list(v.shape) for k, v in D.state_dict().items()} == ffhq512['D_state_shapes']
    assert sum(p.numel() for p in D.parameters()) == ffhq512['D_param_count']


def test_bad_input(tiny_D, tiny_io):
    images, c = _images(tiny_io), torch.from_numpy(tiny_io['c'])
    with pytest.raises(ValueError, match=r'camera label c must be \(2, 25\).*got \(2, 16\)'):
        tiny_D(images, c[:, :16])
    with pytest.raises(ValueError, match='camera label c contains NaN'):
        tiny_D(images, torch.full_like(c, float('nan')))
    with pytest.raises(ValueError, match=r"img\['image'\] must have shape \(N, 3, 128, 128\)"):
        tiny_D({'image': images['image'][..., :64, :64], 'image_raw': images['image_raw']}, c)
    with pytest.raises(ValueError, match="'image_raw'"):
        tiny_D({'image': images['image']}, c)
    with pytest.raises(ValueError, match=r"img\['image_raw'\] must have shape"):
        tiny_D({'image': images['image'], 'image_raw': images['image_raw'][:1]}, c)
