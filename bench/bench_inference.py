"""Time and peak memory of inference with the full FFHQ-512 generator (random weights).

Two workloads, each measured in a fresh process so that CPU peak RSS belongs to it alone:
- portrait: mapping + tri-planes + volume rendering (neural resolution 128) + super-resolution to 512x512;
- frame: one video frame with cached tri-planes (rendering + super-resolution), as gen_videos.py does.
On the CPU the table also gives the peak of live tensor bytes (weights, cached tri-planes and every
intermediate, from the profiler's allocation events): the quantity torch.cuda.max_memory_allocated
reports on a GPU, so it estimates GPU memory where no GPU is lent. A GPU adds its CUDA context (a few
hundred MB) and the caching allocator's rounding on top.

`--batch=N` renders N portraits (N seeds) or N frames (N identities' cached tri-planes) per call; the
table gives seconds per call and per image.

Examples:

    python -m bench.bench_inference --device=cpu --ray-chunk=4096 --reps=2
    python -m bench.bench_inference --device=cpu --batch=4 --reps=1
"""

import json
import os
import resource
import subprocess
import sys
import time
from typing import Optional

import click
import numpy as np
import psutil
import torch
from torch.profiler import ProfilerActivity, profile

import dnnlib
from training import inference

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = ('portrait', 'frame')


def build_ffhq512(device: torch.device) -> torch.nn.Module:
    """The official FFHQ 512 generator configuration (neural rendering at 128) with random weights."""
    with open(os.path.join(REPO_ROOT, 'tests', 'fixtures', 'eg3d', 'ffhq512_shapes.json')) as f:
        G_kwargs = json.load(f)['G_kwargs']
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(**G_kwargs).eval().requires_grad_(False).to(device)
    G.neural_rendering_resolution = 128
    return G


def peak_tensor_increase_mb(fn) -> float:
    """Peak of the bytes of tensors allocated (and not yet freed) while `fn()` runs, from the profiler's
    allocation and free events in time order (on the CPU). On a GPU the same tensors are what
    torch.cuda.max_memory_allocated counts, so this estimates it where no GPU is available."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage  # an op's own allocations minus its frees; '[memory]' = frees
        peak = max(peak, live)
    return peak / 2 ** 20


def tensor_mb(*tensors: torch.Tensor) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2 ** 20


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: CUDA allocations on a GPU, resident set size on the CPU."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def render(G: torch.nn.Module, z: torch.Tensor, ws: torch.Tensor, planes: Optional[torch.Tensor], c: torch.Tensor,
           workload: str) -> dict:
    """One portrait (from z) or one video frame (from ws and its precomputed tri-planes)."""
    if workload == 'portrait':
        return G.synthesis(G.mapping(z, c, truncation_psi=0.7), c, noise_mode='const')
    return G.synthesis(ws, c, noise_mode='const', planes=planes)


@torch.no_grad()
def measure(workload: str, device: torch.device, ray_chunk: int, reps: int, batch: int) -> dict:
    """Wall and process-CPU seconds per call (medians of `reps` after one warm-up) and the peak memory.

    CPU seconds (all threads) are reported too because wall time on a shared machine depends on the load.
    """
    G = build_ffhq512(device)
    loaded_mb = psutil.Process().memory_info().rss / 2 ** 20  # torch + the network, before any rendering
    G.rendering_kwargs['ray_chunk_size'] = ray_chunk  # 0: all rays at once
    c = inference.generator_camera_label(G, 0.3, -0.1, device=device).repeat(batch, 1)
    z = torch.cat([inference.z_from_seed(seed, G.z_dim, device) for seed in range(batch)])
    ws = G.mapping(z, c, truncation_psi=0.7)
    # A frame renders precomputed tri-planes (computed without a full render, so the CPU peak RSS is the frame's own).
    planes = G.synthesize_planes(ws, noise_mode='const') if workload == 'frame' else None
    render(G, z, ws, planes, c, workload)  # warm-up
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times, cpu_times = [], []
    for _ in range(reps):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = render(G, z, ws, planes, c, workload)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    if tuple(out['image'].shape) != (batch, 3, 512, 512):
        raise RuntimeError(f'expected a ({batch}, 3, 512, 512) image, got {tuple(out["image"].shape)}')
    peak_mb = peak_memory_mb(device)
    tensor_peak_mb = None
    if device.type == 'cpu':
        del out
        held = [*G.state_dict().values(), ws] + ([planes] if workload == 'frame' else [])
        tensor_peak_mb = tensor_mb(*held) + peak_tensor_increase_mb(lambda: render(G, z, ws, planes, c, workload))
    return dict(workload=workload, device=str(device), ray_chunk=ray_chunk, batch=batch,
                seconds=float(np.median(times)), cpu_seconds=float(np.median(cpu_times)), peak_mb=peak_mb,
                tensor_peak_mb=tensor_peak_mb, loaded_mb=loaded_mb, threads=torch.get_num_threads())


@click.command()
@click.option('--device', 'device_name', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True)
@click.option('--ray-chunk', type=click.IntRange(min=0), default=4096, show_default=True,
              help='Rays rendered at once; 0 = all rays at once (EG3D)')
@click.option('--reps', type=click.IntRange(min=1), default=2, show_default=True, help='Timed calls per workload')
@click.option('--batch', type=click.IntRange(min=1), default=1, show_default=True, metavar='INT',
              help='Portraits or frames per call')
@click.option('--workload', type=click.Choice(WORKLOADS), help='Run one workload in this process (internal)')
def main(device_name: str, ray_chunk: int, reps: int, batch: int, workload: str):
    """Print a markdown table row per workload (each measured in its own process).

    \b
    Examples:
      python -m bench.bench_inference --device=cpu --ray-chunk=4096 --reps=2
      python -m bench.bench_inference --device=cpu --batch=4 --reps=1
    """
    if workload is not None:
        print(json.dumps(measure(workload, torch.device(device_name), ray_chunk, reps, batch)))
        return
    print('| workload | device | batch | ray chunk | wall s / call | wall s / image | CPU s / call | '
          'peak memory (MB) | peak of live tensors (MB) | RSS before rendering (MB) | threads |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name in WORKLOADS:
        cmd = [sys.executable, '-m', 'bench.bench_inference', f'--device={device_name}', f'--ray-chunk={ray_chunk}',
               f'--reps={reps}', f'--batch={batch}', f'--workload={name}']
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT).stdout
        result = json.loads(out.splitlines()[-1])
        kind = 'CUDA allocated' if device_name == 'cuda' else 'RSS'
        tensors = 'see peak memory' if result['tensor_peak_mb'] is None else f'{result["tensor_peak_mb"]:.0f}'
        print(f'| {name} | {device_name} | {batch} | {ray_chunk or "all"} | {result["seconds"]:.2f} | '
              f'{result["seconds"] / batch:.2f} | {result["cpu_seconds"]:.2f} | '
              f'{result["peak_mb"]:.0f} ({kind}) | {tensors} | {result["loaded_mb"]:.0f} | {result["threads"]} |')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
