"""Pivotal tuning (PTI): fine-tune the generator's EG3D weights so that the pivot latent renders the target.

Tuned: `backbone.synthesis`, `decoder` and `superresolution` (the tri-plane painter, the density /
colour decoder and the super-resolution network), excluding the Domain Adaptation Module and the
exemplar encoder (training.trainable decides what belongs to those); the stored domain codes are
buffers and never change. The mapping network stays as it is, so `G.mapping` still draws the same
latents. Loss: PTI's, LPIPS + L2 of the pivot's render against the target, plus its locality
regulariser: at latents a fixed distance from the pivot towards random latents, the tuned
generator's renders must stay those of the generator before tuning (LPIPS + L2, weight 0.1 each),
so that latents near the pivot -- and the domain path on top of them -- keep working.

Memory: the regulariser's "before" renders are computed once, before the first step, for a small
bank of latents and cameras, so no second copy of the generator is kept; the optimiser's state
(Adam: two tensors per tuned parameter) is the only extra training state.
"""

import dataclasses
import time
from typing import Callable, List, Optional, Tuple

import torch

import camera_utils
from inversion.losses import ReconstructionLoss
from inversion.projection import StageResult, StepReport, render, take_step
from training import inference
from training.trainable import select_parameters

TUNED_PARTS = ('backbone.synthesis', 'decoder', 'superresolution')


@dataclasses.dataclass
class TuningSchedule:
    """PTI's hyper-parameters (lr 3e-4, 350 steps, locality weights 0.1 / 0.1, one regulariser sample per step).

    locality_distance: how far the regulariser's latents lie from the pivot, as a fraction of the
    distance from the pivot to a random latent (PTI steps a fixed distance, 30 in FFHQ's W; a
    fraction of the way carries over to generators whose W has another scale).
    locality_yaw: the bank's cameras turn by up to this many radians either way from the frontal
    view, so that the regulariser also holds the other views of nearby latents.
    """
    num_steps: int = 350
    lr: float = 3e-4
    l2_weight: float = 1.0               # target terms
    lpips_weight: float = 1.0
    locality_weight_l2: float = 0.1      # regulariser terms
    locality_weight_lpips: float = 0.1
    locality_distance: float = 0.3       # fraction of the way from the pivot to a random latent
    locality_yaw: float = 0.5            # radians, either way
    locality_bank: int = 8               # regulariser latents, used in turn


def tuned_parameters(G: torch.nn.Module) -> List[Tuple[str, torch.nn.Parameter]]:
    """(name, parameter) pairs pivotal tuning changes: EG3D's synthesis, decoder and super-resolution."""
    return select_parameters(G, TUNED_PARTS)


@torch.no_grad()
def locality_bank(G: torch.nn.Module, ws_pivot: torch.Tensor, c: torch.Tensor, schedule: TuningSchedule,
                  generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ws (K, num_ws, w_dim), cameras (K, 25), renders before tuning (K, 3, R, R)) for the regulariser.

    Each latent is pivot + locality_distance * (w_z - pivot) for a random w_z = G.mapping(z); its
    camera is the target's camera turned about the vertical axis through the look-at pivot.
    """
    k = min(schedule.locality_bank, schedule.num_steps)  # one regulariser latent per step at most
    z = torch.randn([k, G.z_dim], generator=generator).to(c.device)
    w_z = G.mapping(z, c.expand(k, -1))
    ws = ws_pivot + schedule.locality_distance * (w_z - ws_pivot)
    yaws = (torch.rand([k], generator=generator) * 2 - 1) * schedule.locality_yaw
    cams = torch.cat([camera_utils.turn_camera_label(c, float(yaw), inference.camera_pivot(G))
                      for yaw in yaws])
    before = torch.cat([render(G, ws[i:i + 1], cams[i:i + 1]) for i in range(k)])
    return ws, cams, before


def pivotal_tune(G: torch.nn.Module, ws_pivot: torch.Tensor, target: torch.Tensor, c: torch.Tensor,
                 lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 schedule: Optional[TuningSchedule] = None, seed: int = 0,
                 on_step: Optional[Callable[[StepReport], None]] = None) -> StageResult:
    """Tune G in place so that ws_pivot (1, num_ws, w_dim) seen from c (1, 25) renders target (1, 3, R, R).

    lpips(a, b) -> (N,) perceptual distances of images in [-1, 1] (training.perceptual.LPIPS).
    G comes back in eval mode with no parameter requiring gradients.
    """
    schedule = schedule or TuningSchedule()
    if schedule.num_steps < 1:
        raise ValueError(f'num_steps must be at least 1, got {schedule.num_steps}')
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    bank_ws, bank_c, bank_before = locality_bank(G, ws_pivot, c, schedule, generator)
    params = [p for _, p in tuned_parameters(G)]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=schedule.lr)

    target_loss = ReconstructionLoss(lpips, lpips_weight=schedule.lpips_weight, l2_weight=schedule.l2_weight)
    locality_loss = ReconstructionLoss(lpips, lpips_weight=schedule.locality_weight_lpips,
                                       l2_weight=schedule.locality_weight_l2)

    report = None
    try:
        for step in range(schedule.num_steps):
            image = render(G, ws_pivot, c)
            loss = target_loss(image, target)
            if schedule.locality_weight_l2 or schedule.locality_weight_lpips:
                i = step % len(bank_ws)
                near = render(G, bank_ws[i:i + 1], bank_c[i:i + 1])
                loss = loss + locality_loss(near, bank_before[i:i + 1])
            report = take_step(optimizer, loss, image, target, step, on_step)
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
        G.eval()
    return StageResult(loss=report.loss, psnr=report.psnr, seconds=time.perf_counter() - start,
                        num_parameters=sum(p.numel() for p in params))
