"""Time the compiled op plugins against the pure-PyTorch reference on realistic StyleGAN shapes.

Examples:

\b
# CPU, torch's default thread count, markdown table on stdout:
python bench/bench_ops.py

\b
# More repetitions, one thread, on the GPU when there is one:
python bench/bench_ops.py --repeats=20 --threads=1 --device=cuda
"""

import os
import sys
import time
from typing import Callable, List

import click
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils.ops import bias_act, filtered_lrelu, upfirdn2d  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median wall time of fn() in milliseconds, after one warm-up call (which also builds plugins)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def cases(device: torch.device, dtype: torch.dtype):
    """(name, op(impl, *inputs), inputs) for the three shapes of issue 3."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)
    f1331 = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    f12 = upfirdn2d.setup_filter(np.kaiser(12, 4), device=device)  # 12 taps: separable.
    return [
        ('bias_act lrelu+clamp (4,256,64,64)',
         lambda impl, x, b: bias_act.bias_act(x, b, act='lrelu', clamp=256, impl=impl),
         [rand(4, 256, 64, 64), rand(256)]),
        ('upsample2d [1,3,3,1] (4,128,64,64)',
         lambda impl, x: upfirdn2d.upsample2d(x, f1331, impl=impl),
         [rand(4, 128, 64, 64)]),
        ('filtered_lrelu up2/down2 12-tap (2,64,64,64)',
         lambda impl, x, b: filtered_lrelu.filtered_lrelu(x, f12, f12, b, up=2, down=2, padding=10, clamp=256,
                                                          impl=impl),
         [rand(2, 64, 64, 64), rand(64)]),
    ]


def forward_backward(op, impl: str, inputs: List[torch.Tensor]) -> Callable[[], None]:
    leaves = [t.detach().requires_grad_() for t in inputs]

    def run():
        for leaf in leaves:
            leaf.grad = None  # As optimizer.zero_grad(set_to_none=True): gradients are written, not accumulated.
        y = op(impl, *leaves)
        y.backward(torch.ones_like(y))
    return run


@click.command()
@click.option('--repeats', type=click.IntRange(min=1), default=10, show_default=True, metavar='INT',
              help='Timed calls per measurement (the median is reported).')
@click.option('--threads', type=click.IntRange(min=0), default=0, show_default=True, metavar='INT',
              help='torch.set_num_threads for CPU runs; 0 keeps torch\'s default.')
@click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True,
              help='auto = cuda when available, else cpu.')
@click.option('--half', is_flag=True, help='float16 inputs (CUDA only).')
def main(repeats: int, threads: int, device: str, half: bool) -> None:
    """Print a markdown table: reference vs compiled milliseconds and speed-up, forward and forward+backward."""
    if threads:
        torch.set_num_threads(threads)
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dev = torch.device(device)
    if half and dev.type != 'cuda':
        raise click.BadParameter('--half needs --device=cuda', param_hint='--half')
    dtype = torch.float16 if half else torch.float32
    print(f'device={device} dtype={str(dtype).replace("torch.", "")} threads={torch.get_num_threads()} '
          f'torch={torch.__version__} repeats={repeats}\n')
    print('| op | pass | reference ms | compiled ms | speed-up |')
    print('|---|---|---:|---:|---:|')
    for name, op, inputs in cases(dev, dtype):
        for label, make in (('forward', lambda impl: (lambda: op(impl, *inputs))),
                            ('forward+backward', lambda impl: forward_backward(op, impl, inputs))):
            with torch.no_grad() if label == 'forward' else torch.enable_grad():
                ref = time_ms(make('ref'), dev, repeats)
                compiled = time_ms(make('cuda'), dev, repeats)
            print(f'| {name} | {label} | {ref:.1f} | {compiled:.1f} | {ref / compiled:.2f}x |', flush=True)


if __name__ == '__main__':
    main()
