"""LPIPS v0.1 (VGG-16): the formula against an independent numpy computation, weight files, errors."""

import numpy as np
import pytest
import torch

from training.perceptual import LPIPS, LPIPS_LAYERS, VGG16_FILENAME

SHIFT = np.array([-0.030, -0.088, -0.188]).reshape(3, 1, 1)
SCALE = np.array([0.458, 0.448, 0.450]).reshape(3, 1, 1)
VGG16_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def numpy_vgg16_features(image: np.ndarray, convs: list) -> list:
    """relu<b>_<last> activations (C, H, W) of one image (3, H, W), with a plain 3x3 convolution loop."""
    x = image
    outputs, conv_iter = [], iter(convs)
    for widths in VGG16_WIDTHS:
        for _ in widths:
            weight, bias = next(conv_iter)
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
            h, w = x.shape[1:]
            y = np.zeros((weight.shape[0], h, w))
            for dy in range(3):
                for dx in range(3):
                    y += np.einsum('oc,chw->ohw', weight[:, :, dy, dx], padded[:, dy:dy + h, dx:dx + w])
            x = np.maximum(y + bias[:, None, None], 0)
        outputs.append(x)
        c, h, w = x.shape
        x = x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    return outputs


def numpy_lpips(a: np.ndarray, b: np.ndarray, convs: list, lins: list) -> float:
    fa = numpy_vgg16_features((a - SHIFT) / SCALE, convs)
    fb = numpy_vgg16_features((b - SHIFT) / SCALE, convs)
    total = 0.0
    for xa, xb, lin in zip(fa, fb, lins):
        na = xa / (np.sqrt((xa ** 2).sum(axis=0, keepdims=True)) + 1e-10)
        nb = xb / (np.sqrt((xb ** 2).sum(axis=0, keepdims=True)) + 1e-10)
        total += float((lin[:, None, None] * (na - nb) ** 2).sum(axis=0).mean())
    return total


def test_lpips_matches_numpy_on_random_weights():
    torch.manual_seed(0)
    lpips = LPIPS(allow_random_weights=True)
    convs = [(m.weight.double().numpy(), m.bias.double().numpy()) for m in lpips.vgg.features
             if isinstance(m, torch.nn.Conv2d)]
    lins = [w.reshape(-1).double().numpy() for w in lpips.lin]
    assert len(convs) == 13 and [len(w) for w in lins] == [64, 128, 256, 512, 512]
    assert all((w >= 0).all() for w in lins)
    gen = torch.Generator().manual_seed(1)
    a = torch.rand([2, 3, 32, 32], generator=gen) * 2 - 1
    b = (a + 0.3 * torch.randn([2, 3, 32, 32], generator=gen)).clamp(-1, 1)
    got = lpips(a, b)
    want = [numpy_lpips(a[i].double().numpy(), b[i].double().numpy(), convs, lins) for i in range(2)]
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)
    assert float(lpips(a, a).abs().max()) < 1e-6  # a distance: zero for identical images


def test_lpips_loads_weight_files_and_gradients_reach_the_image(tmp_path):
    torch.manual_seed(0)
    stand_in = LPIPS(allow_random_weights=True)
    vgg_path = tmp_path / VGG16_FILENAME
    torch.save(stand_in.vgg.state_dict(), vgg_path)
    lins = {f'lin{i}.model.1.weight': torch.full((1, w.numel(), 1, 1), 0.01 * (i + 1))
            for i, w in enumerate(stand_in.lin)}
    lin_path = tmp_path / 'vgg.pth'
    torch.save(lins, lin_path)
    lpips = LPIPS(vgg_weights=str(vgg_path), lin_weights=str(lin_path))
    for i, w in enumerate(lpips.lin):
        assert torch.all(w == 0.01 * (i + 1))
    a = torch.zeros([1, 3, 32, 32], requires_grad=True)
    b = torch.rand([1, 3, 32, 32]) * 2 - 1
    lpips(a, b).sum().backward()
    assert a.grad is not None and float(a.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in lpips.parameters())
    assert len(LPIPS_LAYERS) == 5


def test_lpips_refuses_wrong_or_negative_linear_weights(tmp_path):
    torch.manual_seed(0)
    stand_in = LPIPS(allow_random_weights=True)
    vgg_path = tmp_path / VGG16_FILENAME
    torch.save(stand_in.vgg.state_dict(), vgg_path)
    path = tmp_path / 'vgg.pth'
    torch.save({'lin0.model.1.weight': torch.ones(1, 64, 1, 1)}, path)
    with pytest.raises(ValueError, match='lin1.model.1.weight'):
        LPIPS(vgg_weights=str(vgg_path), lin_weights=str(path))
    bad = {f'lin{i}.model.1.weight': -torch.ones(1, w.numel(), 1, 1) for i, w in enumerate(stand_in.lin)}
    torch.save(bad, path)
    with pytest.raises(ValueError, match='non-negative'):
        LPIPS(vgg_weights=str(vgg_path), lin_weights=str(path))
    with pytest.raises(FileNotFoundError, match='vgg.pth'):
        LPIPS(vgg_weights=str(vgg_path), lin_weights=None, allow_random_weights=False)
