"""Loss terms of training/loss.py against hand-computed references."""

import numpy as np
import pytest
import torch

from training import loss as L


def _np_stats(x: np.ndarray, eps: float = 1e-5):
    mean = x.mean(axis=(2, 3))
    std = np.sqrt(x.var(axis=(2, 3)) + eps)
    return mean, std


def test_channel_stats_match_numpy():
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, std = L.channel_stats(x)
    ref_mean, ref_std = _np_stats(x.numpy())
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-12)
    with pytest.raises(ValueError, match='feature map'):
        L.channel_stats(x[0])


def test_adain_style_loss_is_sum_of_mean_and_std_mse():
    gen = torch.Generator().manual_seed(1)
    feats = {name: torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64) for name in L.STYLE_LAYERS}
    target = {name: 3 * torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64) + 1 for name in L.STYLE_LAYERS}
    ref = 0.0
    for name in L.STYLE_LAYERS:
        m, s = _np_stats(feats[name].numpy())
        tm, ts = _np_stats(target[name].numpy())
        ref += ((m - tm) ** 2).mean() + ((s - ts) ** 2).mean()
    assert float(L.adain_style_loss(feats, target)) == pytest.approx(ref, rel=1e-12)
    # A spatial permutation keeps every channel's statistics: loss 0.
    shuffled = {name: feats[name].flip(2).transpose(2, 3) for name in L.STYLE_LAYERS}
    assert float(L.adain_style_loss(feats, shuffled)) == pytest.approx(0.0, abs=1e-24)


def test_identity_loss_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    # cos = 0 for the first pair, 1 for the second -> mean(1 - cos) = 0.5.
    assert float(L.identity_loss(a, b)) == pytest.approx(0.5, abs=1e-7)
    with pytest.raises(ValueError, match=r'\(N, D\)'):
        L.identity_loss(a, b[:, :1])


def test_r1_penalty_dual_of_linear_discriminator():
    gen = torch.Generator().manual_seed(2)
    wa = torch.randn(1, 3, 8, 8, generator=gen)
    wb = torch.randn(1, 3, 4, 4, generator=gen)
    image = torch.randn(2, 3, 8, 8, generator=gen).requires_grad_(True)
    raw = torch.randn(2, 3, 4, 4, generator=gen).requires_grad_(True)
    logits = (image * wa).sum([1, 2, 3]) + (raw * wb).sum([1, 2, 3])
    penalty = L.r1_penalty_dual(logits, image, raw)
    expected = float(wa.square().sum() + wb.square().sum())
    np.testing.assert_allclose(penalty.detach().numpy(), [expected, expected], rtol=1e-6)


def test_resize_to_raw_averages_blocks():
    # Antialiased 4x downsampling keeps a constant image constant.
    img = torch.ones(1, 3, 16, 16)
    out = L.resize_to_raw(img, 4)
    assert out.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(out.numpy(), 1.0, rtol=1e-6)
    ramp = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16).expand(1, 1, 16, 16)
    # Block means of a linear ramp are the ramp at the block centres (x = 1.5, 5.5, 9.5, 13.5),
    # except at the borders where the antialiasing filter is clipped.
    mid = L.resize_to_raw(ramp, 4)[0, 0, 1, 1:3]
    np.testing.assert_allclose(mid.numpy(), [5.5, 9.5], atol=1e-5)
