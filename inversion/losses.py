"""Reconstruction losses and the PSNR score shared by projection and pivotal tuning."""

from typing import Callable

import torch
import torch.nn.functional as F

# Perceptual networks see at most 256 x 256 (LPIPS was trained on 64 x 64 patches; StyleGAN's and
# PTI's projectors downsample larger renders to 256 as well).
PERCEPTUAL_RESOLUTION = 256


def psnr(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images (N, 3, H, W) in [-1, 1] (peak-to-peak 2, i.e. 255 on uint8 pictures) -> (N,)."""
    mse = (image.detach().to(torch.float32) - target.to(torch.float32)).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(4 / mse.clamp(min=1e-10))


def perceptual_input(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> at most PERCEPTUAL_RESOLUTION per side (area downsampling)."""
    if image.shape[-1] > PERCEPTUAL_RESOLUTION:
        image = F.interpolate(image, size=(PERCEPTUAL_RESOLUTION, PERCEPTUAL_RESOLUTION), mode='area')
    return image


class ReconstructionLoss(torch.nn.Module):
    """lpips_weight * LPIPS + l2_weight * MSE between a render and its target, both (N, 3, H, W) in [-1, 1].

    `lpips`: a module mapping two image batches to distances (N,) (training.perceptual.LPIPS).
    Returns the mean over the batch, a scalar.
    """

    def __init__(self, lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 lpips_weight: float = 1.0, l2_weight: float = 1.0):
        super().__init__()
        self.lpips = lpips
        self.lpips_weight = lpips_weight
        self.l2_weight = l2_weight

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.l2_weight * F.mse_loss(image, target)
        if self.lpips_weight:
            loss = loss + self.lpips_weight * self.lpips(perceptual_input(image), perceptual_input(target)).mean()
        return loss
