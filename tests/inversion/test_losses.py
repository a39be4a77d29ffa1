"""PSNR and the reconstruction loss against hand computations."""

import numpy as np
import torch

from inversion.losses import PERCEPTUAL_RESOLUTION, ReconstructionLoss, perceptual_input, psnr


def test_psnr_is_that_of_uint8_pictures():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand([2, 3, 8, 8], generator=gen) * 2 - 1
    b = (a + 0.1 * torch.randn([2, 3, 8, 8], generator=gen)).clamp(-1, 1)
    # The same pictures on the 0..255 scale: PSNR = 10 log10(255^2 / MSE).
    a255, b255 = (a.numpy() + 1) * 127.5, (b.numpy() + 1) * 127.5
    want = [10 * np.log10(255 ** 2 / ((a255[i] - b255[i]) ** 2).mean()) for i in range(2)]
    np.testing.assert_allclose(psnr(a, b).numpy(), want, rtol=1e-5)


def test_reconstruction_loss_weights_its_terms():
    a, b = torch.zeros([1, 3, 4, 4]), torch.full([1, 3, 4, 4], 0.5)
    calls = []

    def fake_lpips(x, y):
        calls.append(x.shape)
        return torch.full([x.shape[0]], 2.0)

    loss = ReconstructionLoss(fake_lpips, lpips_weight=0.5, l2_weight=3.0)
    assert float(loss(a, b)) == 3.0 * 0.25 + 0.5 * 2.0
    assert float(ReconstructionLoss(fake_lpips, lpips_weight=0)(a, b)) == 0.25 and len(calls) == 1


def test_perceptual_input_caps_the_resolution_by_area_averaging():
    image = torch.arange(512 * 512, dtype=torch.float32).view(1, 1, 512, 512).expand(1, 3, -1, -1)
    small = perceptual_input(image)
    assert small.shape[-1] == PERCEPTUAL_RESOLUTION
    assert float(small[0, 0, 0, 0]) == float(image[0, 0, :2, :2].mean())
    assert perceptual_input(image[..., :128, :128]).shape[-1] == 128
