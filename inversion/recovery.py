"""Recovery of a known head: the check of projection and tuning where the 3-D truth is known.

A generator's render of a known latent from a known camera is projected (then the generator is
tuned around the pivot) and the pivot's renders are compared with the true latent's: in the target's
own view, in novel views and stylised in those views, as PSNR in dB. tests/inversion/test_recovery.py
asserts it on the demo network; python -m bench.bench_projector --recovery tabulates more seeds and cameras.
"""

import dataclasses
from typing import Callable, Dict, List, Optional

import torch

from inversion.losses import ReconstructionLoss, psnr
from inversion.pivotal_tuning import TuningSchedule, pivotal_tune
from inversion.projection import ProjectionSchedule, project, seeded_render


@dataclasses.dataclass
class Scores:
    """PSNR (dB) of the pivot's renders against the true latent's."""
    same_view: float
    natural: List[float]   # one per novel camera
    stylised: List[float]  # one per novel camera, with the domain at alpha 1


def recover_known_head(G: torch.nn.Module, ws_true: torch.Tensor, c: torch.Tensor, novel: List[torch.Tensor],
                       lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], domain: str, *,
                       projection: Optional[ProjectionSchedule] = None, tuning: Optional[TuningSchedule] = None,
                       seed: int = 0) -> Dict[str, object]:
    """Project the render of ws_true (1, num_ws, w_dim) from c (1, 25), tune G in place, score both stages.

    novel: cameras (1, 25) of the novel views; domain: a stored domain of G for the stylised renders.
    Returns {'mean_face': PSNR of w_avg's render in the same view, 'projection': Scores, 'tuning': Scores}.
    """
    target = seeded_render(G, ws_true, c)
    truth_natural = [seeded_render(G, ws_true, v) for v in novel]
    truth_stylised = [seeded_render(G, ws_true, v, domain=domain, alpha=1.0) for v in novel]

    def scores(ws: torch.Tensor) -> Scores:
        return Scores(
            same_view=float(psnr(seeded_render(G, ws, c), target)[0]),
            natural=[float(psnr(seeded_render(G, ws, v), t)[0]) for v, t in zip(novel, truth_natural)],
            stylised=[float(psnr(seeded_render(G, ws, v, domain=domain, alpha=1.0), t)[0])
                      for v, t in zip(novel, truth_stylised)])

    w_avg = G.backbone.mapping.w_avg.view(1, 1, -1).expand(1, G.backbone.num_ws, -1)
    result = {'mean_face': float(psnr(seeded_render(G, w_avg, c), target)[0])}
    ws = project(G, target, c, ReconstructionLoss(lpips), latent_space='w_plus', seed=seed, schedule=projection).ws
    result['projection'] = scores(ws)
    pivotal_tune(G, ws, target, c, lpips, seed=seed, schedule=tuning)
    result['tuning'] = scores(ws)
    return result
