"""Time the compiled op plugins against the pure-PyTorch reference on realistic StyleGAN shapes, and (on
the CPU, the only device the fused op runs on) the fused volume renderer against the reference renderer
at FFHQ-512's setting (16384 rays, 48 + 48 samples, 256 x 256 tri-planes, EG3D's decoder), with the
peak RSS of a process rendering once.

Reference and compiled calls alternate, round after round, and the best time of each is reported, so
both see the same machine load; `uptime` is printed with the tables.

Examples:

\b
# CPU, torch's default thread count, markdown table on stdout:
python -m bench.bench_ops

\b
# More repetitions, one thread, on the GPU when there is one:
python -m bench.bench_ops --repeats=20 --threads=1 --device=cuda

\b
# Only the volume renderer, 3 rounds:
python -m bench.bench_ops --only=render --render-rounds=3
"""

import math
import multiprocessing
import resource
import subprocess
import time
from typing import Callable, Dict, List

import click
import torch

from camera_utils import camera_label
from torch_utils.ops import bias_act, upfirdn2d
from training.triplane import OSGDecoder
from training.volumetric_rendering.ray_sampler import RaySampler
from training.volumetric_rendering.renderer import ImportanceRenderer

# FFHQ-512's rendering options (configs/ffhq512.json) at neural rendering resolution 128.
RENDER_OPTIONS = dict(ray_start=2.25, ray_end=3.3, depth_resolution=48, depth_resolution_importance=48,
                      disparity_space_sampling=False, box_warp=1, clamp_mode='softplus')
RENDER_RESOLUTION = 128


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def best_ms(fns: Dict[str, Callable[[], None]], device: torch.device, rounds: int) -> Dict[str, float]:
    """Best wall time in milliseconds of each fn over `rounds` rounds that call them in turn, after
    one warm-up call each (which also builds plugins)."""
    for fn in fns.values():
        fn()
    _sync(device)
    best = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3)
    return best


def cases(device: torch.device, dtype: torch.dtype):
    """(name, op(impl, *inputs), inputs) for realistic StyleGAN2 layer shapes."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)
    f1331 = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    return [
        ('bias_act lrelu+clamp (4,256,64,64)',
         lambda impl, x, b: bias_act.bias_act(x, b, act='lrelu', clamp=256, impl=impl),
         [rand(4, 256, 64, 64), rand(256)]),
        ('upsample2d [1,3,3,1] (4,128,64,64)',
         lambda impl, x: upfirdn2d.upsample2d(x, f1331, impl=impl),
         [rand(4, 128, 64, 64)]),
    ]


def forward_backward(op, impl: str, inputs: List[torch.Tensor]) -> Callable[[], None]:
    leaves = [t.detach().requires_grad_() for t in inputs]

    def run():
        for leaf in leaves:
            leaf.grad = None  # As optimizer.zero_grad(set_to_none=True): gradients are written, not accumulated.
        y = op(impl, *leaves)
        y.backward(torch.ones_like(y))
    return run


def render_scene(rays: int):
    """Random 256 x 256 tri-planes, EG3D's decoder and `rays` rays of a frontal FFHQ camera (the first
    `rays` pixels of a 128 x 128 render, repeated as needed), on the CPU."""
    gen = torch.Generator().manual_seed(0)
    planes = torch.randn(1, 3, 32, 256, 256, generator=gen)
    decoder = OSGDecoder(32, {'decoder_lr_mul': 1, 'decoder_output_dim': 32})
    c = camera_label()  # EG3D's frontal FFHQ camera
    origins, dirs = RaySampler()(c[:, :16].reshape(1, 4, 4), c[:, 16:].reshape(1, 3, 3), RENDER_RESOLUTION)
    repeat = math.ceil(rays / origins.shape[1])
    origins, dirs = (t.repeat(1, repeat, 1)[:, :rays].contiguous() for t in (origins, dirs))
    return planes, decoder, origins, dirs


def render_fn(impl: str, backward: bool, scene) -> Callable[[], None]:
    """One render (the renderer's default ray chunking), and with `backward` the gradients of the planes
    and the decoder for the summed colour and depth."""
    planes, decoder, origins, dirs = scene
    renderer = ImportanceRenderer()
    options = dict(RENDER_OPTIONS, impl=impl)
    leaves = [planes.detach().requires_grad_(), *decoder.parameters()]

    def run():
        torch.manual_seed(0)
        if not backward:
            with torch.no_grad():
                renderer(planes, decoder, origins, dirs, options)
            return
        for leaf in leaves:
            leaf.grad = None
        rgb, depth, _ = renderer(leaves[0], decoder, origins, dirs, options)
        (rgb.sum() + depth.sum()).backward()
    return run


def _peak_rss_gb() -> float:
    """This process's peak RSS: VmHWM where Linux has it (ru_maxrss survives exec, so a freshly started
    child would report its parent's RSS at the fork), else ru_maxrss."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _render_peak_rss(impl: str, backward: bool, threads: int, rays: int, queue) -> None:
    """Child process: render once, report the peak RSS in GB."""
    torch.set_num_threads(threads)
    render_fn(impl, backward, render_scene(rays))()
    queue.put(_peak_rss_gb())


def render_peak_rss_gb(impl: str, backward: bool, threads: int, rays: int) -> float:
    """Peak RSS of a fresh process (torch imported, the scene built) that renders once on the CPU."""
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    child = ctx.Process(target=_render_peak_rss, args=(impl, backward, threads, rays, queue))
    child.start()
    peak = queue.get()
    child.join()
    return peak


def print_ops_table(dev: torch.device, dtype: torch.dtype, repeats: int) -> None:
    print('| op | pass | reference ms | compiled ms | speed-up |')
    print('|---|---|---:|---:|---:|')
    for name, op, inputs in cases(dev, dtype):
        for label, make in (('forward', lambda impl: (lambda: op(impl, *inputs))),
                            ('forward+backward', lambda impl: forward_backward(op, impl, inputs))):
            with torch.no_grad() if label == 'forward' else torch.enable_grad():
                best = best_ms({'ref': make('ref'), 'cuda': make('cuda')}, dev, repeats)
            print(f'| {name} | {label} | {best["ref"]:.1f} | {best["cuda"]:.1f} | '
                  f'{best["ref"] / best["cuda"]:.2f}x |', flush=True)


def print_render_table(rays: int, rounds: int) -> None:
    """The volume-rendering table, on the CPU."""
    print(f'Volume rendering, {rays} rays x ({RENDER_OPTIONS["depth_resolution"]} + '
          f'{RENDER_OPTIONS["depth_resolution_importance"]}) samples, 256 x 256 tri-planes, EG3D decoder:\n')
    print('| pass | reference ms | fused ms | speed-up | reference peak RSS GB | fused peak RSS GB |')
    print('|---|---:|---:|---:|---:|---:|')
    scene = render_scene(rays)
    for label, backward in (('forward', False), ('forward+backward', True)):
        best = best_ms({impl: render_fn(impl, backward, scene) for impl in ('ref', 'cuda')}, torch.device('cpu'),
                       rounds)
        rss = [render_peak_rss_gb(impl, backward, torch.get_num_threads(), rays) for impl in ('ref', 'cuda')]
        print(f'| {label} | {best["ref"]:.0f} | {best["cuda"]:.0f} | {best["ref"] / best["cuda"]:.2f}x '
              f'| {rss[0]:.2f} | {rss[1]:.2f} |', flush=True)


@click.command()
@click.option('--repeats', type=click.IntRange(min=1), default=10, show_default=True, metavar='INT',
              help='Alternating rounds per op measurement (the best is reported).')
@click.option('--threads', type=click.IntRange(min=0), default=0, show_default=True, metavar='INT',
              help='torch.set_num_threads for CPU runs; 0 keeps torch\'s default.')
@click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True,
              help='auto = cuda when available, else cpu.')
@click.option('--half', is_flag=True, help='float16 inputs (CUDA only; not for the renderer).')
@click.option('--only', type=click.Choice(['all', 'ops', 'render']), default='all', show_default=True,
              help='Which table(s) to print.')
@click.option('--render-rays', type=click.IntRange(min=1), default=RENDER_RESOLUTION ** 2, show_default=True,
              metavar='INT', help='Rays per render (128 x 128 = neural rendering 128).')
@click.option('--render-rounds', type=click.IntRange(min=1), default=3, show_default=True, metavar='INT',
              help='Alternating rounds for the renderer (the best is reported).')
def main(repeats: int, threads: int, device: str, half: bool, only: str, render_rays: int, render_rounds: int) -> None:
    """Print markdown tables: reference vs compiled milliseconds and speed-up, forward and forward+backward."""
    if threads:
        torch.set_num_threads(threads)
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dev = torch.device(device)
    if half and dev.type != 'cuda':
        raise click.BadParameter('--half needs --device=cuda', param_hint='--half')
    dtype = torch.float16 if half else torch.float32
    print('uptime:', subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip())
    print(f'device={device} dtype={str(dtype).replace("torch.", "")} threads={torch.get_num_threads()} '
          f'torch={torch.__version__} repeats={repeats}\n')
    if only in ('all', 'ops'):
        print_ops_table(dev, dtype, repeats)
        print()
    if only in ('all', 'render'):
        if dev.type == 'cpu':
            print_render_table(render_rays, render_rounds)
        else:
            print('Volume rendering: skipped, the fused op is CPU-only (CUDA tensors take the renderer\'s '
                  'pure-PyTorch path).')
        print()
    print('uptime:', subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip())


if __name__ == '__main__':
    main()
