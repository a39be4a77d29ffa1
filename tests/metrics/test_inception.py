"""The FID Inception-v3: the published state dict's layout, its input handling, missing weights."""

import os

import pytest
import torch
import torch.nn.functional as F

from metrics.inception import FEATURE_DIM, INCEPTION_FILENAME, NUM_LOGITS, InceptionV3, resize_bilinear_tf1

# Parameters of torchvision's inception_v3 with the auxiliary head (27,161,264, its published size)
# minus that head (3,326,696: conv 768->128 1x1 + BN, conv 128->768 5x5 + BN, fc 768->1000), plus the
# 8 extra classes of the 2015 graph's 1008-way classifier (8 x 2049): the published file's parameter count.
PUBLISHED_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049

# Shapes in the published file, from the architecture tables of the Inception-v3 graph.
PUBLISHED_SHAPES = {
    'Conv2d_1a_3x3.conv.weight': (32, 3, 3, 3),
    'Conv2d_4a_3x3.bn.running_var': (192,),
    'Mixed_5b.branch_pool.conv.weight': (32, 192, 1, 1),
    'Mixed_5d.branch5x5_2.conv.weight': (64, 48, 5, 5),
    'Mixed_6a.branch3x3.conv.weight': (384, 288, 3, 3),
    'Mixed_6b.branch7x7_2.conv.weight': (128, 128, 1, 7),
    'Mixed_6e.branch7x7dbl_5.conv.weight': (192, 192, 1, 7),
    'Mixed_7a.branch3x3_2.conv.weight': (320, 192, 3, 3),
    'Mixed_7b.branch3x3dbl_1.conv.weight': (448, 1280, 1, 1),
    'Mixed_7c.branch3x3_2b.conv.weight': (384, 384, 3, 1),
    'Mixed_7c.branch_pool.conv.weight': (192, 2048, 1, 1),
    'fc.weight': (1008, 2048),
    'fc.bias': (1008,),
}


@pytest.fixture(scope='module')
def net(inception_file):
    return InceptionV3(inception_file)


def test_state_dict_layout_is_the_published_files(net):
    state = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == PUBLISHED_PARAMETERS == 23_850_960
    for key, shape in PUBLISHED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    # 94 conv + BN units, each conv.weight + bn.{weight, bias, running_mean, running_var}, and fc.{weight, bias}.
    convs = [k for k in state if k.endswith('.conv.weight')]
    assert len(convs) == 94
    assert len([k for k in state if not k.endswith('num_batches_tracked')]) == 94 * 5 + 2
    assert not any('AuxLogits' in k for k in state)


def test_loads_a_file_without_batch_norm_counters(net, tmp_path):
    """Files saved by old PyTorch versions have no `num_batches_tracked` entries; they load all the same."""
    state = {k: v + 0.5 if k.endswith('running_mean') else v for k, v in net.state_dict().items()
             if not k.endswith('num_batches_tracked')}
    path = tmp_path / INCEPTION_FILENAME
    torch.save(state, path)
    loaded = InceptionV3(str(path))
    assert torch.equal(loaded.Mixed_7c.branch_pool.bn.running_mean, state['Mixed_7c.branch_pool.bn.running_mean'])


def test_outputs_and_input_normalisation(net):
    images = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)
    features, logits = net(images)
    assert features.shape == (2, FEATURE_DIM) and logits.shape == (2, NUM_LOGITS)
    assert torch.allclose(logits, features @ net.fc.weight.T + net.fc.bias, atol=1e-5)
    probs = net.class_probabilities(features)
    assert torch.allclose(probs, torch.softmax(features @ net.fc.weight.T, dim=1))
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    # 0 -> -1, 128 -> 0, 255 -> 127/128; an image already 299 x 299 is not resampled.
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 299, 299)
    assert InceptionV3.preprocess(x)[0, :, 5, 5].tolist() == [-1.0, 0.0, 127 / 128]
    # A constant image stays constant through the bilinear resize.
    resized = InceptionV3.preprocess(torch.full((1, 3, 64, 64), 64, dtype=torch.uint8))
    assert resized.shape == (1, 3, 299, 299) and torch.allclose(resized, torch.tensor(-0.5))


def test_resize_is_the_tensorflow_graphs_not_half_pixel():
    # TensorFlow 1's bilinear resize reads input position j * in / out: shrinking 4 -> 2 picks pixels 0 and 2,
    # enlarging 2 -> 4 reads positions 0, 0.5, 1, 1.5 (the last pixel repeats past the edge).
    row = torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert resize_bilinear_tf1(row, 2)[0, 0].tolist() == [[10.0, 30.0], [10.0, 30.0]]
    assert resize_bilinear_tf1(torch.tensor([[[[0.0, 8.0], [0.0, 8.0]]]]), 4)[0, 0, 0].tolist() == [0, 4, 8, 8]
    # StyleGAN3's detector gets the same sampling from a grid shifted by 1/W - 1/299 (normalised units).
    images = torch.rand(2, 3, 45, 60, dtype=torch.float64) * 255
    theta = torch.tensor([[[1, 0, 1 / 60 - 1 / 299], [0, 1, 1 / 45 - 1 / 299]]], dtype=torch.float64).repeat(2, 1, 1)
    grid = F.affine_grid(theta, [2, 3, 299, 299], align_corners=False)
    expected = F.grid_sample(images, grid, mode='bilinear', padding_mode='border', align_corners=False)
    torch.testing.assert_close(resize_bilinear_tf1(images, 299), expected, atol=1e-9, rtol=0)
    # The network reads images so (a 1024 image is shifted by 1.2 pixels against PyTorch's half-pixel resize).
    big = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(InceptionV3.preprocess(big), (resize_bilinear_tf1(big.float(), 299) - 128) / 128)


def test_refuses_float_input(net):
    with pytest.raises(ValueError, match='uint8'):
        net(torch.zeros(1, 3, 32, 32))


def test_missing_weights_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv('PSTYLE3D_CACHE_DIR', str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        InceptionV3(None)
    message = str(err.value)
    assert INCEPTION_FILENAME in message and 'pytorch-fid/releases' in message
    assert os.path.join(str(tmp_path), 'weights', INCEPTION_FILENAME) in message
