"""Speed and memory of projection and pivotal tuning, and recovery of known heads (projector.py's algorithm).

Speed: seconds per projection step and per pivotal-tuning step (random LPIPS stand-ins, which cost
what the real weights cost) and the peak RSS of the process, for the bundled demo network and for
the FFHQ-512 configuration (random weights; neural rendering 128, output 512), each in a fresh
process; plus the time of a full default run (500 + 350 steps) extrapolated from them.

Recovery (--recovery): renders of the demo network from known latents and cameras are projected (W+,
then tuning) and compared with the true latent's renders in the same view, in novel views (the
target's yaw +-0.4) and stylised (alpha 1), as PSNR in dB.

Run from the repository root:

    python -m bench.bench_projector --device=cpu --steps=3
    python -m bench.bench_projector --recovery --seeds=0,3,5 --yaws=-0.3,0.2 --num-steps=40 --pti-steps=20
"""

import functools
import json
import os
import resource
import subprocess
import sys
import time

import click
import numpy as np
import torch

import dnnlib
import gen_utils
import legacy
from inversion.losses import ReconstructionLoss
from inversion.pivotal_tuning import TuningSchedule, pivotal_tune
from inversion.projection import ProjectionSchedule, project, seeded_render
from inversion.recovery import recover_known_head
from training import inference
from training.perceptual import LPIPS

REPO_ROOT = gen_utils.REPO_ROOT
NETWORKS = ('demo', 'ffhq512')
DEFAULT_STEPS = (500, 350)
NOVEL = (-0.4, 0.4)  # novel views: the target's yaw turned by these


def build_network(name: str, device: torch.device) -> torch.nn.Module:
    if name == 'demo':
        G = legacy.load_network_pkl(os.path.join(REPO_ROOT, gen_utils.DEMO_NETWORK))['G_ema']
    else:
        with open(os.path.join(REPO_ROOT, 'tests', 'fixtures', 'eg3d', 'ffhq512_shapes.json')) as f:
            G_kwargs = json.load(f)['G_kwargs']
        torch.manual_seed(0)
        G = dnnlib.util.construct_class_by_name(**G_kwargs)
        G.neural_rendering_resolution = 128
    return G.eval().requires_grad_(False).to(device)


def measure(name: str, device_name: str, steps: int) -> dict:
    """One network in this process: s/step of projection and tuning, peak RSS / CUDA memory."""
    device = torch.device(device_name)
    G = build_network(name, device)
    torch.manual_seed(0)
    lpips = LPIPS(allow_random_weights=True).to(device)
    c = inference.generator_camera_label(G, 0.2, -0.1, device=device)
    target = seeded_render(G, G.mapping(torch.randn([1, G.z_dim], device=device), c), c)
    row = {'network': name, 'resolution': G.img_resolution}
    for stage in ('projection', 'tuning'):
        stamps = []  # the end of every step; the first step's start is the end of the set-up

        def stamp(_report):
            if device.type == 'cuda':
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        start = time.perf_counter()
        if stage == 'projection':
            project(G, target, c, ReconstructionLoss(lpips), schedule=ProjectionSchedule(num_steps=1 + steps),
                    on_step=stamp)
        else:
            pivotal_tune(G, G.mapping(torch.zeros([1, G.z_dim], device=device), c), target, c, lpips,
                         schedule=TuningSchedule(num_steps=1 + steps), on_step=stamp)
        # The first step also warms up (allocations, plug-in loading): time the later ones.
        row[f'{stage}_s_per_step'] = float(np.median(np.diff(stamps)))
        row[f'{stage}_setup_s'] = stamps[0] - start - row[f'{stage}_s_per_step']
    row['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == 'cuda':
        row['peak_cuda_mb'] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    row['default_run_min'] = (row['projection_setup_s'] + row['tuning_setup_s'] + DEFAULT_STEPS[0] *
                              row['projection_s_per_step'] + DEFAULT_STEPS[1] * row['tuning_s_per_step']) / 60
    return row


def recovery(seeds, yaws, projection: ProjectionSchedule, tuning: TuningSchedule) -> None:
    """The recovery table of tests/inversion/test_recovery.py's check on more seeds and cameras (PSNR, dB)."""
    print('| seed | yaw | mean face | projection: same / novel / stylised novel | '
          '+ tuning: same / novel / stylised novel | s |')
    print('| --- | --- | --- | --- | --- | --- |')

    def cells(scores):  # novel views: the worse of the two
        return f'{scores.same_view:.1f} / {min(scores.natural):.1f} / {min(scores.stylised):.1f}'

    for seed in seeds:
        for yaw in yaws:
            start = time.perf_counter()
            G = build_network('demo', torch.device('cpu'))
            torch.manual_seed(0)
            lpips = LPIPS(allow_random_weights=True)
            camera = functools.partial(inference.generator_camera_label, G, pitch=-0.1)
            ws_true = G.mapping(inference.z_from_seed(seed, G.z_dim, torch.device('cpu')), camera(0.0, pitch=0.0),
                                truncation_psi=0.7)
            result = recover_known_head(G, ws_true, camera(yaw), [camera(yaw + d) for d in NOVEL], lpips, 'synthetic',
                                        projection=projection, tuning=tuning)
            print(f"| {seed} | {yaw:+.2f} | {result['mean_face']:.1f} | {cells(result['projection'])} | "
                  f"{cells(result['tuning'])} | {time.perf_counter() - start:.0f} |", flush=True)


@click.command()
@click.option('--device', 'device_name', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True)
@click.option('--networks', default=','.join(NETWORKS), show_default=True, help='Comma-separated: demo, ffhq512')
@click.option('--steps', type=click.IntRange(min=1), default=3, show_default=True, help='Timed steps per stage')
@click.option('--recovery', 'run_recovery', is_flag=True, help='Recovery table of known heads instead of speed')
@click.option('--seeds', type=gen_utils.SeedList(), default='0,3,5', show_default=True)
@click.option('--yaws', type=gen_utils.FloatList(), default='-0.3,0.2', show_default=True)
@click.option('--num-steps', type=click.IntRange(min=1), default=40, show_default=True)
@click.option('--pti-steps', type=click.IntRange(min=1), default=20, show_default=True)
@click.option('--lr', type=float, default=0.02, show_default=True)
@click.option('--pti-lr', type=float, default=5e-4, show_default=True)
@click.option('--symmetry-weight', type=click.FloatRange(min=0), default=ProjectionSchedule.symmetry_weight,
              show_default=True,
              help='Weight of the mirrored target in the projection (projector.py --symmetry-weight)')
@click.option('--worker', hidden=True, help='Measure one network in this process and print its row as JSON')
def main(device_name, networks, steps, run_recovery, seeds, yaws, num_steps, pti_steps, lr, pti_lr, symmetry_weight,
         worker):
    """Time projection and pivotal tuning per step, or check recovery of known heads (see the module docstring)."""
    if worker:
        print(json.dumps(measure(worker, device_name, steps)))
        return
    if run_recovery:
        recovery(seeds, yaws, ProjectionSchedule(num_steps=num_steps, lr=lr, symmetry_weight=symmetry_weight),
                 TuningSchedule(num_steps=pti_steps, lr=pti_lr))
        return
    print('load average before (1, 5, 15 min): {:.2f} {:.2f} {:.2f} (the machine may be shared)'.format(
        *os.getloadavg()))
    print('| network | output | projection s/step | tuning s/step | set-up s | peak RSS MB | '
          'default run (500 + 350 steps, extrapolated) min |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for name in networks.split(','):
        out = subprocess.run([sys.executable, '-m', 'bench.bench_projector', f'--worker={name}',
                              f'--device={device_name}', f'--steps={steps}'],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        memory = f"{row['peak_rss_mb']:.0f}" + (f" (CUDA {row['peak_cuda_mb']:.0f})" if 'peak_cuda_mb' in row else '')
        print(f"| {name} | {row['resolution']} | {row['projection_s_per_step']:.2f} | {row['tuning_s_per_step']:.2f} | "
              f"{row['projection_setup_s'] + row['tuning_setup_s']:.1f} | {memory} | {row['default_run_min']:.1f} |",
              flush=True)
    print('load average after (1, 5, 15 min): {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()))


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
