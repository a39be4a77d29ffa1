"""Super-resolution: EG3D's four module layouts from one class, input resizing, and the last-w rule."""

import numpy as np
import pytest
import torch

from training import superresolution as sr

SMALL = dict(channel_base=2048, channel_max=32, fused_modconv_default='inference_only')

# EG3D's layouts: (input resolution, output, block0 upsamples?, block0/1 out channels, resample_filter buffer)
LAYOUTS = {
    'SuperresolutionHybrid2X': (64, 128, False, (128, 64), True),
    'SuperresolutionHybrid4X': (128, 256, False, (128, 64), True),
    'SuperresolutionHybrid8X': (128, 512, True, (128, 64), True),
    'SuperresolutionHybrid8XDC': (128, 512, True, (256, 128), False),
}


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_alias_layouts(name):
    in_res, out_res, up, (c0, c1), has_filter = LAYOUTS[name]
    module = getattr(sr, name)(channels=32, img_resolution=out_res, sr_num_fp16_res=4, sr_antialias=True, **SMALL)
    assert isinstance(module, sr.SuperresolutionHybrid) and type(module).__name__ == name
    assert module.input_resolution == in_res and module.block0.up == (2 if up else 1)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert ('resample_filter' in shapes) == has_filter
    assert shapes['block0.conv0.weight'] == (c0, 32, 3, 3) and shapes['block1.conv1.weight'] == (c1, c1, 3, 3)
    assert shapes['block0.conv0.noise_const'] == (out_res // 2,) * 2
    assert shapes['block1.torgb.weight'] == (3, c1, 1, 1)
    with pytest.raises(ValueError, match=f'{out_res}x{out_res}'):
        getattr(sr, name)(channels=32, img_resolution=out_res * 2, sr_num_fp16_res=0, sr_antialias=True)


def test_legacy_deepfp32_is_the_4x_layout():
    legacy = sr.SuperresolutionHybridDeepfp32(32, 256, sr_num_fp16_res=0, **SMALL)
    four = sr.SuperresolutionHybrid4X(32, 256, sr_num_fp16_res=0, sr_antialias=True, **SMALL)
    assert {k: v.shape for k, v in legacy.state_dict().items()} == {k: v.shape for k, v in four.state_dict().items()}
    assert legacy.sr_antialias is False


def test_fp16_setting_sets_the_clamp():
    on = sr.SuperresolutionHybrid2X(32, 128, sr_num_fp16_res=1, sr_antialias=True)
    off = sr.SuperresolutionHybrid2X(32, 128, sr_num_fp16_res=0, sr_antialias=True)
    assert on.block0.use_fp16 and on.block1.conv1.conv_clamp == 256 and on.block1.torgb.conv_clamp == 256
    assert not off.block0.use_fp16 and off.block1.conv1.conv_clamp is None


def test_4x_resizes_input_and_uses_only_the_last_w():
    torch.manual_seed(0)
    module = sr.SuperresolutionHybrid4X(32, 256, sr_num_fp16_res=0, sr_antialias=True).eval()
    x = torch.randn(1, 32, 64, 64)
    ws = torch.randn(1, 5, 512)
    with torch.no_grad():
        out = module(x[:, :3], x, ws, noise_mode='none')
        assert out.shape == (1, 3, 256, 256)
        # Resizing first to the input resolution gives the same result (the module does exactly that).
        big = torch.nn.functional.interpolate(x, size=(128, 128), mode='bilinear', align_corners=False, antialias=True)
        np.testing.assert_allclose(module(big[:, :3], big, ws, noise_mode='none').numpy(), out.numpy(), atol=1e-5)
        # Only the last w drives the module.
        ws_other = torch.cat([torch.randn(1, 4, 512), ws[:, -1:]], 1)
        np.testing.assert_array_equal(module(x[:, :3], x, ws_other, noise_mode='none').numpy(), out.numpy())


def test_input_at_the_module_resolution_is_not_modified_and_trains():
    # A regression test: the no-upsampling first block used to add its RGB in place to the caller's
    # render when no resizing happened (EG3D does the same), so image_raw changed under the caller
    # and training failed with "modified by an inplace operation".
    torch.manual_seed(0)
    module = sr.SuperresolutionHybrid2X(32, 128, sr_num_fp16_res=0, sr_antialias=True).train()
    features = torch.randn(1, 32, 64, 64, requires_grad=True)
    rgb = features[:, :3]
    before = rgb.detach().clone()
    out = module(rgb, features, torch.randn(1, 5, 512), noise_mode='none')
    assert torch.equal(rgb.detach(), before)
    out.square().sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
