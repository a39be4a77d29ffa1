"""Where the 3-D truth is known: a render of the demo network from a known latent and camera is projected
(W+, then pivotal tuning, random LPIPS stand-ins as --random-perceptual builds them) and must come back,
in its own view, in novel views and stylised. bench/bench_projector.py --recovery checks more seeds and cameras.
"""

import pytest
import torch

from projector.losses import ReconstructionLoss, psnr
from projector.pivotal_tuning import TuningSchedule, pivotal_tune
from projector.projection import ProjectionSchedule, project
from training.perceptual import LPIPS
from tests.projector.conftest import camera, load_demo, seeded_render, true_latent

SEED, YAW = 0, 0.2
NOVEL = (-0.4, 0.4)  # novel views: the target's yaw turned by these


@pytest.fixture(scope='module')
def recovered():
    G = load_demo()
    torch.manual_seed(0)
    lpips = LPIPS(allow_random_weights=True)
    c = camera(G, YAW)
    ws_true = true_latent(G, SEED)
    target = seeded_render(G, ws_true, c)
    views = [camera(G, YAW + d) for d in NOVEL]
    truth = {'natural': [seeded_render(G, ws_true, v) for v in views],
             'stylised': [seeded_render(G, ws_true, v, domain='synthetic', alpha=1.0) for v in views]}
    w_avg = G.backbone.mapping.w_avg.view(1, 1, -1).expand(1, G.backbone.num_ws, -1)
    mean_face = float(psnr(seeded_render(G, w_avg, c), target)[0])
    projection = project(G, target, c, ReconstructionLoss(lpips), latent_space='w_plus', seed=0,
                         schedule=ProjectionSchedule(num_steps=40, lr=0.02))
    pivotal_tune(G, projection.ws, target, c, lpips, seed=0, schedule=TuningSchedule(num_steps=20, lr=5e-4))
    ws = projection.ws
    return dict(
        mean_face=mean_face,
        same_view=float(psnr(seeded_render(G, ws, c), target)[0]),
        natural=[float(psnr(seeded_render(G, ws, v), t)[0]) for v, t in zip(views, truth['natural'])],
        stylised=[float(psnr(seeded_render(G, ws, v, domain='synthetic', alpha=1.0), t)[0])
                  for v, t in zip(views, truth['stylised'])])


def test_projection_and_tuning_recover_a_known_head(recovered):
    assert recovered['mean_face'] < 23  # what starting from the mean face scores
    assert recovered['same_view'] >= 30
    assert min(recovered['natural']) >= 26, recovered
    assert min(recovered['stylised']) >= 24, recovered
