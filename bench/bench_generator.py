"""Seconds per image and peak memory of the full FFHQ-512 tri-plane generator (random weights):
mapping, tri-planes, volume rendering at the neural rendering resolution, super-resolution to 512.

Every (ops, batch, ray chunk) configuration runs in a fresh process, so that the CPU peak resident set
size belongs to that configuration alone (it includes the ~0.25 GB of weights and the Python/torch
runtime). On a GPU the peak is torch.cuda.max_memory_allocated. Besides wall-clock seconds the
table gives CPU seconds (all threads) per image, which a busy shared machine distorts less.

Examples:

    python bench/bench_generator.py                                   # CPU, batch 1, default ray chunk
    python bench/bench_generator.py --chunk=default --chunk=all --chunk=4096 --repeats=2
    python bench/bench_generator.py --device=cuda --batch=4 --chunk=all --chunk=16384
    python bench/bench_generator.py --ops=compiled --ops=ref        # effect of the compiled ops
"""

import json
import math
import os
import resource
import subprocess
import sys
import time
from typing import List, Optional

import click
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import configs  # noqa: E402  (after the path set-up above)
import dnnlib  # noqa: E402
from camera_utils import FOV_to_intrinsics, LookAtPoseSampler  # noqa: E402
from torch_utils import custom_ops  # noqa: E402


def _camera_labels(batch: int, device: torch.device) -> torch.Tensor:
    """(batch, 25) labels of EG3D's frontal FFHQ camera."""
    pose = LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, torch.tensor([0, 0, 0.2], device=device),
                                    radius=2.7, batch_size=batch, device=device)
    intrinsics = FOV_to_intrinsics(18.837, device=device).reshape(1, 9).expand(batch, 9)
    return torch.cat([pose.reshape(batch, 16), intrinsics], 1)


@torch.no_grad()
def measure(device: str, batch: int, chunk: Optional[int], repeats: int, resolution: int) -> dict:
    """Build the generator, render one warm-up batch, then time `repeats` batches. chunk: ray_chunk_size
    (0 = all rays at once), None = G's default, not passed at all, as a user's `G(z, c)`."""
    dev = torch.device(device)
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(**configs.load_preset('ffhq512').G_kwargs)
    G = G.eval().requires_grad_(False).to(dev)
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux: KiB -> GiB
    z, c = torch.randn(batch, G.z_dim, device=dev), _camera_labels(batch, dev)

    def render():
        chunk_kwargs = {} if chunk is None else dict(ray_chunk_size=chunk)
        img = G(z, c, neural_rendering_resolution=resolution, noise_mode='const', **chunk_kwargs)['image']
        if dev.type == 'cuda':
            torch.cuda.synchronize(dev)
        return img

    render()  # warm-up: first-call allocations and kernel selection
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        render()
        times.append((time.perf_counter() - start) / batch)
        cpu_times.append((time.process_time() - cpu_start) / batch)
    return dict(device=device, batch=batch, chunk=chunk, resolution=resolution, sec_per_image=min(times),
                sec_per_image_mean=sum(times) / len(times), cpu_sec_per_image=min(cpu_times),
                rss_after_build_gib=rss_built,
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                cuda_peak_gib=torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == 'cuda' else None,
                threads=torch.get_num_threads())


def _parse_chunk(value: str) -> Optional[int]:
    """'default' -> None (G's default), 'all' -> 0 (all rays at once), else a positive number of rays."""
    if value.lower() in ('default', 'all'):
        return None if value.lower() == 'default' else 0
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f'expected a positive number of rays, "default" or "all", got {value!r}')
    return int(value)


@click.command()
@click.option('--device', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True, help='Where to run.')
@click.option('--batch', 'batches', type=click.IntRange(min=1), multiple=True, default=[1], show_default=True,
              metavar='INT', help='Images per call (repeatable).')
@click.option('--chunk', 'chunks', multiple=True, default=['default'], show_default=True, metavar='INT|default|all',
              help='Rays rendered at once, ray_chunk_size (repeatable; default = not passed, as a user\'s G(z, c); '
                   'all = all rays at once, as EG3D).')
@click.option('--ops', 'ops_impls', type=click.Choice(['compiled', 'ref']), multiple=True, default=['compiled'],
              show_default=True, help='Compiled op plugins, or pure-PyTorch ops only (repeatable).')
@click.option('--repeats', type=click.IntRange(min=1), default=2, show_default=True,
              help='Timed calls after one warm-up.')
@click.option('--resolution', type=click.IntRange(min=2), default=128, show_default=True,
              help='Neural rendering resolution.')
@click.option('--json-out', type=click.Path(dir_okay=False), default=None, metavar='FILE',
              help='Also write the results as JSON.')
@click.option('--child', hidden=True, default=None)
def main(device: str, ops_impls: List[str], batches: List[int], chunks: List[str], repeats: int, resolution: int,
         json_out: Optional[str], child: Optional[str]):
    """Print a table of seconds per image and peak memory for the FFHQ-512 generator.

    \b
    Examples:
      python bench/bench_generator.py                                   # CPU, batch 1, default ray chunk
      python bench/bench_generator.py --chunk=default --chunk=all --chunk=4096 --repeats=2
      python bench/bench_generator.py --device=cuda --batch=4 --chunk=all --chunk=16384
      python bench/bench_generator.py --ops=compiled --ops=ref        # effect of the compiled ops
    """
    if child is not None:  # one configuration, in this fresh process
        ops_impl, batch, chunk = json.loads(child)
        print(json.dumps(dict(ops=ops_impl, **measure(device, batch, chunk, repeats, resolution))))
        return
    if device == 'cuda' and not torch.cuda.is_available():
        raise click.UsageError('--device=cuda, but torch.cuda.is_available() is False')
    parsed_chunks = [_parse_chunk(c) for c in chunks]  # all checked before anything runs
    results = []
    for ops_impl in ops_impls:
        env = dict(os.environ, **{custom_ops.DISABLE_ENV: '1' if ops_impl == 'ref' else '0'})
        for batch in batches:
            for chunk in parsed_chunks:
                cmd = [sys.executable, os.path.abspath(__file__), f'--device={device}', f'--repeats={repeats}',
                       f'--resolution={resolution}', f'--child={json.dumps([ops_impl, batch, chunk])}']
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
                _print_row(results[-1], header=len(results) == 1)
    if json_out:
        with open(json_out, 'w') as f:
            json.dump(results, f, indent=1)


def _print_row(r: dict, header: bool) -> None:
    if header:
        print(f"{'ops':>8} {'device':>6} {'batch':>5} {'chunk':>7} {'s/img(min)':>10} {'s/img(mean)':>11} {'CPU s/img':>9} "
              f"{'RSS built':>9} {'peak RSS':>8} {'CUDA peak':>9}")
    cuda = '-' if r['cuda_peak_gib'] is None else f"{r['cuda_peak_gib']:.2f}G"
    chunk = {None: 'default', 0: 'all'}.get(r['chunk'], str(r['chunk']))
    print(f"{r['ops']:>8} {r['device']:>6} {r['batch']:>5} {chunk:>7} {r['sec_per_image']:>10.2f} {r['sec_per_image_mean']:>11.2f} "
          f"{r['cpu_sec_per_image']:>9.2f} {r['rss_after_build_gib']:>8.2f}G {r['peak_rss_gib']:>7.2f}G {cuda:>9}",
          flush=True)


if __name__ == '__main__':
    main()
