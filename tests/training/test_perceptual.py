"""VGG feature extractors and ArcFace identity embedding (random stand-in weights, tiny images)."""

import os

import pytest
import torch
import torch.nn.functional as F

from training.perceptual import (IR_SE50_FILENAME, VGG16_FILENAME, VGG19_FILENAME, VGG19_RELU_LAYERS, IdentityEncoder,
                                 VGG19Features, VGGFeatures, vgg_output_layers)


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    """Point the weights cache at an empty folder so a real download never leaks into a test."""
    monkeypatch.setenv('PSTYLE3D_CACHE_DIR', str(tmp_path / 'cache'))


def _images(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_vgg_layer_shapes_follow_the_architecture():
    torch.manual_seed(0)
    vgg = VGG19Features(allow_random_weights=True, layers=VGG19_RELU_LAYERS)
    feats = vgg(_images())
    assert list(feats) == list(VGG19_RELU_LAYERS)
    widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    for name, f in feats.items():
        block = int(name[4])
        assert f.shape == (2, widths[block], 32 >> (block - 1), 32 >> (block - 1)), name
        assert (f >= 0).all()
    assert len(vgg.features) == 36  # torchvision's vgg19().features[:36] ends at relu5_4


def test_random_vgg_stand_in_keeps_its_feature_scale():
    """Regression: with PyTorch's default init, relu4_1 of the random stand-in was ~0.005 and the content
    loss of a strong colour shift ~2e-8, so --random-perceptual runs had no content loss at all."""
    torch.manual_seed(0)
    vgg = VGG19Features(allow_random_weights=True)
    img = _images()
    shifted = img.clone()
    shifted[:, 0] += 0.5
    feats, shifted_feats = vgg(img), vgg(shifted)
    for name in ('relu1_1', 'relu4_1'):
        assert 0.3 < feats[name].abs().mean() < 5, name
    assert F.mse_loss(feats['relu4_1'], shifted_feats['relu4_1']) > 0.05
    assert all(float(m.bias.abs().max()) == 0 for m in vgg.features if isinstance(m, torch.nn.Conv2d))


def test_vgg_matches_a_hand_written_forward():
    torch.manual_seed(1)
    vgg = VGG19Features(allow_random_weights=True, layers=('relu1_1', 'relu2_1'))
    assert len(vgg.features) == 7  # built only up to relu2_1
    img = _images(seed=3)
    feats = vgg(img)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = ((img + 1) / 2 - mean) / std
    conv = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    r11 = F.relu(F.conv2d(x, conv[0].weight, conv[0].bias, padding=1))
    r12 = F.relu(F.conv2d(r11, conv[1].weight, conv[1].bias, padding=1))
    r21 = F.relu(F.conv2d(F.max_pool2d(r12, 2), conv[2].weight, conv[2].bias, padding=1))
    torch.testing.assert_close(feats['relu1_1'], r11, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats['relu2_1'], r21, rtol=1e-5, atol=1e-5)


def test_vgg_loads_torchvision_layout_and_ignores_the_classifier(tmp_path):
    torch.manual_seed(2)
    full = VGG19Features(allow_random_weights=True, layers=('relu5_1',))
    assert len(full.features) == 30  # torchvision's vgg19().features[:30] ends at relu5_1
    state = {k: torch.randn_like(v) for k, v in full.state_dict().items()}
    state['features.34.weight'] = torch.randn(512, 512, 3, 3)  # deeper layers and the classifier are in the file
    state['classifier.0.weight'] = torch.randn(8, 8)
    path = tmp_path / VGG19_FILENAME
    torch.save(state, path)
    vgg = VGG19Features(weights=str(path), layers=('relu3_1',))
    for k, v in vgg.state_dict().items():
        assert torch.equal(v, state[k]), k
    by_url = VGG19Features(weights=path.as_uri(), layers=('relu1_1',))  # URLs go through dnnlib.util.open_url
    assert torch.equal(by_url.features[0].weight, state['features.0.weight'])


def test_missing_weights_name_the_file_and_the_cache_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=VGG19_FILENAME) as err:
        VGG19Features()
    assert os.path.join(str(tmp_path / 'cache'), 'weights') in str(err.value)
    assert 'allow_random_weights=True' in str(err.value)
    with pytest.raises(FileNotFoundError, match=IR_SE50_FILENAME):
        IdentityEncoder()
    with pytest.raises(FileNotFoundError, match='does not exist'):
        IdentityEncoder(weights=str(tmp_path / 'nowhere.pth'))


def test_weights_in_the_cache_folder_are_found(tmp_path):
    torch.manual_seed(4)
    ref = VGG19Features(allow_random_weights=True, layers=('relu1_1',))
    os.makedirs(tmp_path / 'cache' / 'weights')
    torch.save(ref.state_dict(), tmp_path / 'cache' / 'weights' / VGG19_FILENAME)
    torch.manual_seed(5)
    vgg = VGG19Features(layers=('relu1_1',))
    assert torch.equal(vgg.features[0].weight, ref.features[0].weight)


def test_perceptual_nets_are_frozen_but_pass_gradients_to_the_image():
    torch.manual_seed(6)
    vgg = VGG19Features(allow_random_weights=True, layers=('relu2_1',))
    vgg.train()
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    img = _images().requires_grad_(True)
    vgg(img)['relu2_1'].sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        vgg(torch.zeros(2, 1, 32, 32))


def test_identity_embedding_is_unit_length_and_sees_only_the_face_crop(tmp_path):
    torch.manual_seed(7)
    net = IdentityEncoder(allow_random_weights=True)
    net.train()
    assert not net.training
    img = _images(n=1, size=128, seed=8)
    emb = net(img)
    assert emb.shape == (1, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(1))
    # Crop rows 35/256..223/256 and columns 32/256..220/256 of a 128 image: [18:112, 16:110].
    outside = img.clone()
    outside[:, :, :17] = 0.5
    outside[:, :, :, 111:] = -0.5
    assert torch.equal(net(outside), emb)
    inside = img.clone()
    inside[:, :, 60:70, 60:70] = 1.0
    assert (net(inside) - emb).abs().max() > 1e-4
    # The model_ir_se50.pth layout loads key for key into a fresh network.
    path = tmp_path / IR_SE50_FILENAME
    torch.save(net.state_dict(), path)
    torch.manual_seed(9)
    reloaded = IdentityEncoder(weights=str(path))
    assert torch.equal(reloaded(img), emb)


def test_vgg16_layers_follow_torchvision_vgg16():
    torch.manual_seed(10)
    names = vgg_output_layers('vgg16')
    assert names[:4] == ('relu1_1', 'relu1_2', 'relu2_1', 'relu2_2') and names[-5:] == (
        'relu5_1', 'relu5_2', 'relu5_3', 'fc6', 'fc7')
    vgg = VGGFeatures('vgg16', allow_random_weights=True, layers=('relu1_2', 'relu3_3', 'relu5_3'))
    assert len(vgg.features) == 30 and vgg.classifier is None  # torchvision's vgg16().features[:30] ends at relu5_3
    feats = vgg(_images(size=64))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        'relu1_2': (2, 64, 64, 64), 'relu3_3': (2, 256, 16, 16), 'relu5_3': (2, 512, 4, 4)}
    with pytest.raises(ValueError, match='relu3_4'):
        VGGFeatures('vgg16', allow_random_weights=True, layers=('relu3_4',))  # a VGG-19 layer only
    with pytest.raises(ValueError, match='unknown VGG architecture'):
        VGGFeatures('vgg11', allow_random_weights=True)


@pytest.mark.slow
def test_vgg16_fc7_matches_a_hand_written_classifier_and_loads_torchvision_keys(tmp_path):
    torch.manual_seed(11)
    ref = VGGFeatures('vgg16', allow_random_weights=True, layers=('relu5_3', 'fc7'))
    assert len(ref.features) == 31  # the whole feature stack, pool5 included
    state = {k: torch.randn_like(v) * 0.05 for k, v in ref.state_dict().items()}
    assert sorted(k for k in state if k.startswith('classifier')) == [
        'classifier.0.bias', 'classifier.0.weight', 'classifier.3.bias', 'classifier.3.weight']
    state['classifier.6.weight'] = torch.randn(1000, 4096)  # the file's ImageNet logits layer is not used
    path = tmp_path / VGG16_FILENAME
    torch.save(state, path)
    vgg = VGGFeatures('vgg16', weights=str(path), layers=('relu5_3', 'fc6', 'fc7'))
    img = _images(size=64, seed=12)
    feats = vgg(img)
    pool5 = F.max_pool2d(feats['relu5_3'], 2)  # 2 x 2, replicated to 7 x 7 by the adaptive pooling
    x = F.adaptive_avg_pool2d(pool5, 7).flatten(1)
    fc6 = F.relu(x @ state['classifier.0.weight'].T + state['classifier.0.bias'])
    fc7 = F.relu(fc6 @ state['classifier.3.weight'].T + state['classifier.3.bias'])
    assert feats['fc7'].shape == (2, 4096)
    torch.testing.assert_close(feats['fc6'], fc6, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(feats['fc7'], fc7, rtol=1e-4, atol=1e-4)
    # forward() is forward_normalized() after ImageNet normalisation of [-1, 1] input.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg.forward_normalized(((img + 1) / 2 - mean) / std)['fc7'], feats['fc7'])
    with pytest.raises(FileNotFoundError, match=VGG16_FILENAME):
        VGGFeatures('vgg16')
