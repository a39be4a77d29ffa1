"""pSp-style domain encoder: shapes, pyramid routing, resizing, source branch, IR-SE weight loading."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.encoders import GradualStyleEncoder
from training.perceptual import IdentityEncoder

SMALL = dict(channels=(16, 32, 32, 64), head_channels=32)


def _images(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_default_encoder_gives_one_code_per_w_with_ir_se50_names():
    torch.manual_seed(0)
    enc = GradualStyleEncoder(num_ws=14, w_dim=512, img_resolution=32)
    codes = enc(_images())
    assert codes.shape == (2, 14, 512) and torch.isfinite(codes).all()
    # The backbone is the IR-SE-50 of model_ir_se50.pth: 24 units, names and shapes as in that file.
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert shapes['input_layer.0.weight'] == (64, 3, 3, 3)
    assert shapes['body.3.shortcut_layer.0.weight'] == (128, 64, 1, 1)
    assert shapes['body.23.res_layer.5.fc2.weight'] == (512, 32, 1, 1)
    # input layer 7 entries, 15 per unit, 6 more for the 3 units whose shortcut is a conv (new width)
    assert sum(k.startswith(('input_layer.', 'body.')) for k in shapes) == 7 + 24 * 15 + 3 * 6


@pytest.mark.parametrize('resolution', [32, 64])
def test_heads_reduce_each_pyramid_level_to_1x1(resolution):
    enc = GradualStyleEncoder(num_ws=10, w_dim=24, img_resolution=resolution, coarse_ind=2, middle_ind=5, **SMALL)
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in head.convs) for head in enc.styles]
    levels = [resolution // 16, resolution // 8, resolution // 4]  # coarse, middle, fine feature sizes
    expected = [max(1, int(np.log2(levels[0 if i < 2 else 1 if i < 5 else 2]))) for i in range(10)]
    assert convs == expected
    assert enc(_images(size=resolution)).shape == (2, 10, 24)


@pytest.fixture(scope='module')
def small_encoder():
    torch.manual_seed(1)
    return GradualStyleEncoder(num_ws=6, w_dim=16, img_resolution=32, coarse_ind=2, middle_ind=4, **SMALL).eval()


def test_each_code_depends_only_on_its_own_head(small_encoder):
    enc = copy.deepcopy(small_encoder)
    img = _images()
    before = enc(img)
    with torch.no_grad():
        enc.styles[3].linear.bias.add_(1.0)
    after = enc(img)
    changed = (after - before).abs().amax(dim=(0, 2))
    torch.testing.assert_close(changed, torch.tensor([0, 0, 0, 1.0, 0, 0]))


def test_exemplars_are_resized_to_the_encoder_resolution(small_encoder):
    big = _images(size=64, seed=3)
    small = F.interpolate(big, size=(32, 32), mode='bilinear', align_corners=False, antialias=True)
    assert torch.equal(small_encoder(big), small_encoder(small))


def test_source_branch_starts_off_and_is_linear_in_the_natural_latent():
    torch.manual_seed(4)
    enc = GradualStyleEncoder(num_ws=4, w_dim=16, img_resolution=32, coarse_ind=1, middle_ind=2,
                              source_branch=True, **SMALL).eval()
    img = _images()
    ws_a, ws_b = torch.randn(2, 4, 16), torch.randn(2, 4, 16)
    assert torch.equal(enc(img, ws_a), enc(img, ws_b))  # zero-initialised: no effect at first
    with torch.no_grad():
        enc.source_proj.weight.normal_()
    diff = enc(img, ws_a) - enc(img, ws_b)
    torch.testing.assert_close(diff, (ws_a - ws_b) @ enc.source_proj.weight.t(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='source_ws'):
        enc(img)
    with pytest.raises(ValueError, match=r'\(N, 4, 16\)'):
        enc(img, torch.randn(2, 3, 16))


def test_bad_inputs_and_configs_are_refused(small_encoder):
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        small_encoder(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match='power of 2'):
        GradualStyleEncoder(num_ws=4, img_resolution=48, **SMALL)
    with pytest.raises(ValueError, match='coarse_ind'):
        GradualStyleEncoder(num_ws=4, coarse_ind=3, middle_ind=7, **SMALL)
    with pytest.raises(ValueError, match='num_layers'):
        GradualStyleEncoder(num_ws=4, num_layers=34, **SMALL)


def test_ir_se_weights_initialise_the_backbone(tmp_path):
    torch.manual_seed(5)
    arcface = IdentityEncoder(allow_random_weights=True)
    path = tmp_path / 'model_ir_se50.pth'
    torch.save(arcface.state_dict(), path)
    enc = GradualStyleEncoder(num_ws=4, w_dim=16, img_resolution=32, coarse_ind=1, middle_ind=2, head_channels=16)
    enc.load_ir_se_weights(str(path))
    ref = arcface.state_dict()
    for k, v in enc.state_dict().items():
        if k.startswith(('input_layer.', 'body.')):
            assert torch.equal(v, ref[k]), k
    narrow = GradualStyleEncoder(num_ws=4, w_dim=16, img_resolution=32, coarse_ind=1, middle_ind=2, **SMALL)
    with pytest.raises((ValueError, RuntimeError), match='size mismatch|do not fit'):
        narrow.load_ir_se_weights(str(path))
