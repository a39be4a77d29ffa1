"""W / W+ projection: the latent whose render from a known camera best matches a target image.

The optimisation is the one of StyleGAN2's projector as PTI and EG3D's inversion scripts use it:
start at the mean latent, Adam with a learning rate that ramps up over the first 5 % of the steps
and down (cosine) over the last 25 %, and Gaussian noise on the latent that decays quadratically to
zero over the first 75 %, so that early steps explore and late steps settle. W optimises one
w (broadcast to every layer). W+ optimises one w per layer (num_ws of them), starting from the W
solution of the first `w_plus_start` of the steps: starting W+ at the mean latent lets the layers
drift apart early and lands off the mapping network's manifold, where renders from other views and
with the domain path (which the latents of W were trained for) degrade; for the same reason the W+
steps add a regulariser that keeps the layers near their mean (`w_plus_spread`).

One view leaves the far side of the head free. Faces are close to mirror-symmetric, so the target
flipped left-right is, nearly, what the head looks like from the mirrored camera (yaw and roll
negated: camera_utils.xflip_camera_label): `symmetry_weight` adds that pseudo view's loss (the
symmetry prior of 3-D GAN inversion methods such as SPI, Yin et al. 2023), rendered in one batch
with the target's view. It lifts the novel views of near-symmetric heads and costs asymmetric ones
(a side parting, side lighting; docs/projection.md has the measurements); 0 turns it off. Pivotal
tuning does not use it: tuning the generator's weights to the mirrored view would force an
asymmetric head into symmetry.
"""

import dataclasses
import math
import time
from typing import Callable, Optional, Tuple

import torch

from camera_utils import xflip_camera_label
from inversion.losses import psnr
from training import inference

LATENT_SPACES = ('w', 'w_plus')
RENDER_SEED = 0  # the renderer's random draws for every picture that is saved or scored
W_STATS_SAMPLES = 10000  # latents drawn to estimate the mean and spread of W


@dataclasses.dataclass
class ProjectionSchedule:
    """Hyper-parameters of the projection (StyleGAN2's projector's defaults, learning rate PTI's)."""
    num_steps: int = 500
    lr: float = 0.01
    initial_noise_factor: float = 0.05
    noise_ramp_length: float = 0.75
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    w_plus_start: float = 0.5
    w_plus_spread_weight: float = 1.0  # W+ regulariser: layers' squared distance to their mean, in w_std^2
    symmetry_weight: float = 0.25      # face-symmetry prior: the mirrored target from the mirrored camera

    def learning_rate(self, step: int) -> float:
        t = step / self.num_steps
        ramp = min(1.0, (1.0 - t) / self.lr_rampdown_length)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        return self.lr * ramp * min(1.0, t / self.lr_rampup_length)

    def noise_scale(self, step: int, w_std: float) -> float:
        t = step / self.num_steps
        return w_std * self.initial_noise_factor * max(0.0, 1.0 - t / self.noise_ramp_length) ** 2


@dataclasses.dataclass
class StepReport:
    """What a progress callback sees after each optimisation step."""
    step: int
    loss: float
    psnr: float
    image: torch.Tensor  # (1, 3, H, W) the render of this step, in [-1, 1], detached


@dataclasses.dataclass
class StageResult:
    """The outcome of projection or of pivotal tuning."""
    loss: float                        # loss of the last step
    psnr: float                        # PSNR (dB) of the last step's render
    seconds: float
    ws: Optional[torch.Tensor] = None  # projection: (1, num_ws, w_dim) the pivot (a W projection broadcast)
    num_parameters: int = 0            # pivotal tuning: how many generator weights it tuned


def take_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, image: torch.Tensor, target: torch.Tensor,
              step: int, on_step: Optional[Callable[[StepReport], None]]) -> StepReport:
    """Backpropagate `loss`, step the optimiser and report the step (loss, PSNR of `image` against `target`)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    report = StepReport(step, float(loss.detach()), float(psnr(image, target)[0]), image.detach())
    if on_step is not None:
        on_step(report)
    return report


def w_plus_spread(ws: torch.Tensor, w_std: float) -> torch.Tensor:
    """Mean squared distance of the layers of ws (1, num_ws, w_dim) to their mean, in units of w_std^2 (a scalar).

    Zero for a latent of W. Adam moves every coordinate by about the learning rate whatever its gradient,
    so the layers that barely change the target's view drift apart; the domain path and the other views,
    which see those layers, then go wrong. This pulls them back towards one w.
    """
    return (ws - ws.mean(dim=1, keepdim=True)).square().sum(dim=-1).mean() / w_std ** 2


@torch.no_grad()
def w_statistics(G: torch.nn.Module, c: torch.Tensor, num_samples: int = W_STATS_SAMPLES,
                 seed: int = 123) -> tuple:
    """(w_avg (1, 1, w_dim), w_std float): mean of G.mapping over random z and the RMS distance to it.

    c: (1, 25) the camera label the mapping is conditioned on.
    """
    z = torch.randn([num_samples, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(c.device)
    w = G.mapping(z, c.expand(num_samples, -1))[:, :1]  # (num_samples, 1, w_dim); every layer is equal
    w_avg = w.mean(dim=0, keepdim=True)
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return w_avg, w_std


def render(G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, **domain_kwargs) -> torch.Tensor:
    """G.synthesis 'image' (N, 3, R, R) of ws (N, num_ws, w_dim) from cameras c (N, 25), constant noise."""
    return G.synthesis(ws, c, noise_mode='const', **domain_kwargs)['image']


@torch.no_grad()
def seeded_render(G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, **domain_kwargs) -> torch.Tensor:
    """render() with the renderer's random draws seeded by RENDER_SEED, so that compared pictures share them."""
    return inference.seeded_synthesis(G, ws, c, RENDER_SEED, **domain_kwargs)['image']


def mirror_camera(c: torch.Tensor) -> torch.Tensor:
    """The camera label (1, 25) that sees the left-right mirror image of what c sees (of a mirrored scene)."""
    return torch.from_numpy(xflip_camera_label(c.cpu().numpy())).to(c)


def target_loss(G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, c_mirror: torch.Tensor, target: torch.Tensor,
                loss_fn: Callable, symmetry_weight: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(loss, render (1, 3, R, R)) of ws (1, num_ws, w_dim) seen from c (1, 25) against target (1, 3, R, R):
    loss_fn(render, target), plus symmetry_weight times the loss of the render from the mirrored camera
    c_mirror = mirror_camera(c) against the mirrored target, both views in one batch."""
    if not symmetry_weight:
        image = render(G, ws, c)
        return loss_fn(image, target), image
    image, mirrored = render(G, ws.expand(2, -1, -1), torch.cat([c, c_mirror])).split(1)
    return loss_fn(image, target) + symmetry_weight * loss_fn(mirrored, target.flip(-1)), image


def project(G: torch.nn.Module, target: torch.Tensor, c: torch.Tensor, loss_fn: Callable, *,
            latent_space: str = 'w_plus', schedule: Optional[ProjectionSchedule] = None, seed: int = 0,
            on_step: Optional[Callable[[StepReport], None]] = None) -> StageResult:
    """Find the latent of `target` (1, 3, R, R) in [-1, 1] seen from camera c (1, 25); R = G.img_resolution.

    loss_fn(render, target) -> scalar (inversion.losses.ReconstructionLoss). G is not changed.
    The renderer's random sampling and the latent noise are seeded by `seed`. The reported losses
    include the symmetry term and the W+ regulariser; the PSNR is the target view's alone.
    """
    if latent_space not in LATENT_SPACES:
        raise ValueError(f'latent_space must be one of {LATENT_SPACES}, got {latent_space!r}')
    schedule = schedule or ProjectionSchedule()
    if schedule.num_steps < 1:
        raise ValueError(f'num_steps must be at least 1, got {schedule.num_steps}')
    expected = (1, G.img_channels, G.img_resolution, G.img_resolution)
    if tuple(target.shape) != expected:
        raise ValueError(f'target must be {expected} (the generator\'s resolution), got {tuple(target.shape)}')
    start = time.perf_counter()
    torch.manual_seed(seed)
    w_avg, w_std = w_statistics(G, c)
    c_mirror = mirror_camera(c)  # once: a host round trip
    num_ws = G.backbone.num_ws
    split_step = round(schedule.w_plus_start * schedule.num_steps) if latent_space == 'w_plus' else None
    w_opt = w_avg.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt], betas=(0.9, 0.999), lr=schedule.lr)
    report = None
    for step in range(schedule.num_steps):
        if step == split_step:  # W -> W+: one w per layer from here on, with a fresh optimiser state
            w_opt = w_opt.detach().repeat(1, num_ws, 1).requires_grad_(True)
            optimizer = torch.optim.Adam([w_opt], betas=(0.9, 0.999), lr=schedule.lr)
        for group in optimizer.param_groups:
            group['lr'] = schedule.learning_rate(step)
        w_noisy = w_opt + torch.randn_like(w_opt) * schedule.noise_scale(step, w_std)
        loss, image = target_loss(G, w_noisy.expand(1, num_ws, -1), c, c_mirror, target, loss_fn,
                                  schedule.symmetry_weight)
        if w_opt.shape[1] > 1:
            loss = loss + schedule.w_plus_spread_weight * w_plus_spread(w_opt, w_std)
        report = take_step(optimizer, loss, image, target, step, on_step)
    ws = w_opt.detach().expand(1, num_ws, -1).clone()
    return StageResult(loss=report.loss, psnr=report.psnr, seconds=time.perf_counter() - start, ws=ws)
