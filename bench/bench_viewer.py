"""Frames per second of the viewer's render loop: an orbiting camera rendered from cached tri-planes.

Each frame is what visualizer.py does when the browser camera moves: viewer.render_core's render
(volume rendering + super-resolution from cached planes) of a new camera, then the letterbox and
the JPEG encoding of the picture sent to the page. The first frame (which also computes the
tri-planes) is timed apart. CPU milliseconds per frame (all threads) are what a busy machine
distorts least. The machine's load average is printed with every row, because shared
machines slow renders down.

Examples:

    python -m bench.bench_viewer                                  # bundled demo network, native resolution
    python -m bench.bench_viewer --resolution=16 --resolution=32 --resolution=64 --frames=20
    python -m bench.bench_viewer --preset=ffhq512 --device=cuda   # FFHQ-512 configuration, random weights
"""

import dataclasses
import io
import itertools
import math
import os
import time
from typing import List, Optional

import click
import numpy as np
import PIL.Image
import torch

import configs
import dnnlib
import gen_utils
import legacy
from viewer.render_core import RenderCore, letterbox, orbit_camera

CANVAS_ASPECT = 1000 / 700  # the browser test's window


def _generator(network: Optional[str], preset: Optional[str], device: torch.device) -> torch.nn.Module:
    if preset is not None:
        torch.manual_seed(0)
        G = dnnlib.util.construct_class_by_name(**configs.load_preset(preset).G_kwargs)
        return G.eval().requires_grad_(False).to(device)
    return legacy.load_generator(gen_utils.resolve_network_path(network), device)


def _frame(core: RenderCore, settings, yaw: float) -> None:
    image = core.render(settings, orbit_camera(core.G, yaw, 0.1 * math.sin(3 * yaw)))
    if core.device.type == 'cuda':
        torch.cuda.synchronize(core.device)
    PIL.Image.fromarray(letterbox(image, CANVAS_ASPECT)).save(io.BytesIO(), format='JPEG', quality=95)


@click.command()
@click.option('--network', metavar='PATH', help='Network pickle  [default: the bundled demo network]')
@click.option('--preset', metavar='NAME',
              help='Instead of --network: a configs/ preset with random weights, e.g. ffhq512')
@click.option('--resolution', 'resolutions', type=click.IntRange(min=8), multiple=True, metavar='INT',
              help='Neural rendering resolution (repeatable)  [default: the network\'s native one]')
@click.option('--threads', 'thread_counts', type=click.IntRange(min=1), multiple=True, metavar='INT',
              help='CPU threads of PyTorch (repeatable; visualizer.py --threads)  [default: 1]')
@click.option('--frames', type=click.IntRange(min=1), default=20, show_default=True, help='Timed frames per row')
@click.option('--device', 'device_name', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True)
def main(network: Optional[str], preset: Optional[str], resolutions: List[int], thread_counts: List[int], frames: int,
         device_name: str):
    """Print a table of the viewer's frames per second."""
    device = torch.device(device_name)
    G = _generator(network, preset, device)
    G.rendering_kwargs['ray_chunk_size'] = 65536  # visualizer.py's default --ray-chunk
    core = RenderCore(G, device)
    name = preset or os.path.basename(gen_utils.resolve_network_path(network))
    print(f'{name}: output {G.img_resolution}, native neural rendering resolution {core.native_resolution}, '
          f'{device_name}, median of {frames} frames')
    print(f'{"threads":>7} {"resolution":>10} {"first frame s":>13} {"ms/frame":>9} {"frames/s":>9} '
          f'{"CPU ms/frame":>12}  load average (1, 5, 15 min)')
    for threads, resolution in itertools.product(thread_counts or [1], resolutions or [core.native_resolution]):
        torch.set_num_threads(threads)
        settings = core.default_settings()
        settings = dataclasses.replace(settings, neural_rendering_resolution=resolution)
        core = RenderCore(G, device)  # a fresh plane cache: the first frame computes the planes
        start = time.perf_counter()
        _frame(core, settings, 0.0)
        first = time.perf_counter() - start
        _frame(core, settings, 0.01)  # warm-up of the cached path
        times = []
        cpu_start = time.process_time()
        for i in range(frames):
            start = time.perf_counter()
            _frame(core, settings, 0.6 * math.sin(2 * math.pi * i / frames))
            times.append(time.perf_counter() - start)
        cpu_ms = (time.process_time() - cpu_start) / frames * 1000
        ms = float(np.median(times)) * 1000
        load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
        print(f'{threads:>7} {resolution:>10} {first:>13.2f} {ms:>9.1f} {1000 / ms:>9.2f} {cpu_ms:>12.1f}  {load}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
