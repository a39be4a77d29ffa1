"""Seconds per image and peak memory of the full FFHQ-512 tri-plane generator (random weights):
mapping, tri-planes, volume rendering at the neural rendering resolution, super-resolution to 512.
The table also splits the time per image into those stages (wall seconds, and CPU seconds of all
threads in brackets: a stage whose CPU time is close to its wall time runs on one thread).

Every (ops, batch, ray chunk) configuration runs in a fresh process, so that the CPU peak resident set
size belongs to that configuration alone (it includes the ~0.25 GB of weights and the Python/torch
runtime). On a GPU the peak is torch.cuda.max_memory_allocated. Besides wall-clock seconds the
table gives CPU seconds (all threads) per image, which a busy shared machine distorts less.

With `--eg3d=DIR` (DIR = the `eg3d` folder of a checkout of NVlabs/eg3d) it compares `G(z, c)` side by
side with EG3D's own TriPlaneGenerator instead: for every `--seed`, one random-weight state dict, latent
and camera are written to a temporary file; EG3D's code and this project's load them in alternating
fresh processes for `--rounds` rounds, each call preceded by `torch.manual_seed(seed)` (both renderers
draw the same random numbers in the same order), and the table gives the best and mean seconds per
image, the peak RSS and the largest absolute difference between the two images. EG3D runs on its CPU
path (its pure-PyTorch reference ops), neural rendering 128, `noise_mode='const'`.

Examples:

    python -m bench.bench_generator                                   # CPU, batch 1, default ray chunk
    python -m bench.bench_generator --chunk=default --chunk=all --chunk=4096 --repeats=2
    python -m bench.bench_generator --device=cuda --batch=4 --chunk=all --chunk=16384
    python -m bench.bench_generator --ops=compiled --ops=ref        # effect of the compiled ops
    python -m bench.bench_generator --eg3d=/tmp/eg3d_src/eg3d --rounds=3 --seed=0 --seed=1
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import click
import torch

# The repository's modules are imported inside the functions that use them: an EG3D process
# (`--eg3d`) imports EG3D's packages of the same names (dnnlib, training, torch_utils) instead.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPLS = ('eg3d', 'ours')


def _child_run(args: list, cwd: str, env: Optional[dict] = None) -> str:
    """Run this module in a fresh process from `cwd` and return its stdout. The child's imports find the
    packages of `cwd` first (python -m puts it at the head of the path): this repository's, or EG3D's
    from its source folder; PYTHONPATH finds this `bench` package either way."""
    env = dict(os.environ if env is None else env)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    cmd = [sys.executable, '-m', 'bench.bench_generator', *args]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env).stdout


def _camera_labels(batch: int, device: torch.device) -> torch.Tensor:
    """(batch, 25) labels of EG3D's frontal FFHQ camera."""
    from camera_utils import camera_label
    return camera_label(device=device).repeat(batch, 1)


STAGES = (('tri-planes', 'backbone.synthesis'), ('render', 'renderer'), ('SR', 'superresolution'))


def time_stages(G: torch.nn.Module, dev: torch.device) -> dict:
    """Wrap the forward of each of G's STAGES so that every call adds its wall and CPU seconds (all
    threads) to the returned {stage: [wall, cpu]}; CPU seconds near the wall time mean one busy thread."""
    totals = {}
    for stage, path in STAGES:
        module = G.get_submodule(path)
        totals[stage] = [0.0, 0.0]

        def timed(*args, _forward=module.forward, _total=totals[stage], **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            out = _forward(*args, **kwargs)
            if dev.type == 'cuda':
                torch.cuda.synchronize(dev)
            _total[0] += time.perf_counter() - start
            _total[1] += time.process_time() - cpu_start
            return out
        module.forward = timed
    return totals


@torch.no_grad()
def measure(device: str, batch: int, chunk: Optional[int], repeats: int, resolution: int) -> dict:
    """Build the generator, render one warm-up batch, then time `repeats` batches. chunk: ray_chunk_size
    (0 = all rays at once), None = G's default, not passed at all, as a user's `G(z, c)`."""
    import configs
    import dnnlib
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
    stage_totals = time_stages(G, dev)
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
                threads=torch.get_num_threads(),
                stages={stage: [t / (repeats * batch) for t in total] for stage, total in stage_totals.items()})


def write_shared_inputs(path: str, seed: int) -> None:
    """One random-weight FFHQ-512 generator (EG3D's constructor arguments) with every parameter and w_avg
    perturbed by N(0, 0.1^2), so that biases and noise strengths matter, plus a latent and EG3D's
    frontal camera: what both implementations load in `--eg3d` mode."""
    import dnnlib
    with open(os.path.join(REPO_ROOT, 'tests', 'fixtures', 'eg3d', 'ffhq512_shapes.json')) as f:
        G_kwargs = json.load(f)['G_kwargs']
    torch.manual_seed(seed)
    G = dnnlib.util.construct_class_by_name(**G_kwargs)
    state = G.state_dict()
    for name, tensor in state.items():
        if name.endswith('w_avg') or any(name == n for n, _ in G.named_parameters()):
            tensor.add_(torch.randn_like(tensor), alpha=0.1)
    torch.save(dict(G_kwargs=json.dumps(G_kwargs), state=state, seed=seed, z=torch.randn(1, G.z_dim),
                    c=_camera_labels(1, torch.device('cpu'))), path)


@torch.no_grad()
def measure_side(impl: str, eg3d_dir: str, inputs_file: str, image_file: str, repeats: int) -> dict:
    """In this fresh process, build EG3D's or this project's TriPlaneGenerator from `inputs_file`, time
    `repeats` calls of G(z, c) after one warm-up (each after torch.manual_seed(seed)) and save the image."""
    import dnnlib  # EG3D's or this project's: the child runs from the folder of the code it measures
    shared = torch.load(inputs_file, weights_only=True)
    G = dnnlib.util.construct_class_by_name(**json.loads(shared['G_kwargs'])).eval().requires_grad_(False)
    G.load_state_dict(shared.pop('state'))
    z, c, seed = shared['z'], shared['c'], shared['seed']

    def render() -> torch.Tensor:
        torch.manual_seed(seed)
        return G(z, c, neural_rendering_resolution=128, noise_mode='const')['image']

    render()  # warm-up
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        image = render()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    torch.save(image, image_file)
    return dict(impl=impl, seed=seed, times=times, cpu_times=cpu_times,
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)


def compare_with_eg3d(eg3d_dir: str, seeds: List[int], rounds: int, repeats: int) -> List[dict]:
    """Side-by-side table of EG3D's G(z, c) and this project's, alternating fresh processes."""
    if not os.path.isfile(os.path.join(eg3d_dir, 'training', 'triplane.py')):
        raise click.BadParameter(f'{eg3d_dir!r} has no training/triplane.py; pass the eg3d folder of an '
                                 f'NVlabs/eg3d checkout', param_hint='--eg3d')
    print(f"{'seed':>4} {'impl':>5} {'s/img(best)':>11} {'s/img(mean)':>11} {'CPU s/img(best)':>15} {'peak RSS':>8}")
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            inputs_file = os.path.join(tmp, f'inputs_{seed}.pt')
            write_shared_inputs(inputs_file, seed)
            runs = {impl: [] for impl in IMPLS}
            for round_index in range(rounds):
                for impl in (IMPLS if round_index % 2 == 0 else IMPLS[::-1]):  # neither always runs first
                    spec = dict(impl=impl, eg3d=os.path.abspath(eg3d_dir), inputs=inputs_file,
                                image=os.path.join(tmp, f'{impl}_{seed}.pt'))
                    out = _child_run([f'--repeats={repeats}', f'--side-child={json.dumps(spec)}'],
                                     cwd=spec['eg3d'] if impl == 'eg3d' else REPO_ROOT)
                    runs[impl].append(json.loads(out.strip().splitlines()[-1]))
            best = {}
            for impl in IMPLS:
                times = [t for run in runs[impl] for t in run['times']]
                best[impl] = min(times)
                cpu = min(t for run in runs[impl] for t in run['cpu_times'])
                rss = max(run['peak_rss_gib'] for run in runs[impl])
                print(f'{seed:>4} {impl:>5} {best[impl]:>11.2f} {sum(times) / len(times):>11.2f} {cpu:>15.2f} '
                      f'{rss:>7.2f}G', flush=True)
            images = [torch.load(os.path.join(tmp, f'{impl}_{seed}.pt'), weights_only=True) for impl in IMPLS]
            max_diff = (images[0] - images[1]).abs().max().item()
            print(f'{seed:>4} ours/EG3D time (best) {best["ours"] / best["eg3d"]:.2f}, '
                  f'max |image difference| {max_diff:.2e}', flush=True)
            summaries.append(dict(seed=seed, runs=runs, max_abs_image_diff=max_diff))
    return summaries


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
@click.option('--eg3d', 'eg3d_dir', type=click.Path(exists=True, file_okay=False), default=None, metavar='DIR',
              help='Compare G(z, c) side by side with EG3D\'s code in DIR (the eg3d folder of NVlabs/eg3d) instead.')
@click.option('--seed', 'seeds', type=click.IntRange(min=0), multiple=True, default=[0], show_default=True,
              help='With --eg3d: seed of the random weights, latent and renderer noise (repeatable).')
@click.option('--rounds', type=click.IntRange(min=1), default=3, show_default=True,
              help='With --eg3d: fresh-process rounds per implementation, alternating.')
@click.option('--json-out', type=click.Path(dir_okay=False), default=None, metavar='FILE',
              help='Also write the results as JSON.')
@click.option('--child', hidden=True, default=None)
@click.option('--side-child', hidden=True, default=None)
def main(device: str, ops_impls: List[str], batches: List[int], chunks: List[str], repeats: int, resolution: int,
         eg3d_dir: Optional[str], seeds: List[int], rounds: int, json_out: Optional[str], child: Optional[str],
         side_child: Optional[str]):
    """Print a table of seconds per image and peak memory for the FFHQ-512 generator.

    \b
    Examples:
      python -m bench.bench_generator                                   # CPU, batch 1, default ray chunk
      python -m bench.bench_generator --chunk=default --chunk=all --chunk=4096 --repeats=2
      python -m bench.bench_generator --device=cuda --batch=4 --chunk=all --chunk=16384
      python -m bench.bench_generator --ops=compiled --ops=ref        # effect of the compiled ops
      python -m bench.bench_generator --eg3d=/tmp/eg3d_src/eg3d --rounds=3 --seed=0 --seed=1
    """
    if child is not None:  # one configuration, in this fresh process
        ops_impl, batch, chunk = json.loads(child)
        print(json.dumps(dict(ops=ops_impl, **measure(device, batch, chunk, repeats, resolution))))
        return
    if side_child is not None:  # one implementation of the EG3D comparison, in this fresh process
        spec = json.loads(side_child)
        print(json.dumps(measure_side(spec['impl'], spec['eg3d'], spec['inputs'], spec['image'], repeats)))
        return
    if eg3d_dir is not None:
        if device != 'cpu':
            raise click.UsageError('--eg3d compares on the CPU only; drop --device')
        _write_json(json_out, compare_with_eg3d(eg3d_dir, seeds, rounds, repeats))
        return
    if device == 'cuda' and not torch.cuda.is_available():
        raise click.UsageError('--device=cuda, but torch.cuda.is_available() is False')
    from torch_utils import custom_ops
    parsed_chunks = [_parse_chunk(c) for c in chunks]  # all checked before anything runs
    results = []
    for ops_impl in ops_impls:
        env = dict(os.environ, **{custom_ops.DISABLE_ENV: '1' if ops_impl == 'ref' else '0'})
        for batch in batches:
            for chunk in parsed_chunks:
                out = _child_run([f'--device={device}', f'--repeats={repeats}', f'--resolution={resolution}',
                                  f'--child={json.dumps([ops_impl, batch, chunk])}'], cwd=REPO_ROOT, env=env)
                results.append(json.loads(out.strip().splitlines()[-1]))
                _print_row(results[-1], header=len(results) == 1)
    _write_json(json_out, results)


def _write_json(path: Optional[str], results: List[dict]) -> None:
    if path:
        with open(path, 'w') as f:
            json.dump(results, f, indent=1)


def _print_row(r: dict, header: bool) -> None:
    if header:
        print(f"{'ops':>8} {'device':>6} {'batch':>5} {'chunk':>7} {'s/img(min)':>10} {'s/img(mean)':>11} "
              f"{'CPU s/img':>9} {'RSS built':>9} {'peak RSS':>8} {'CUDA peak':>9}  " +
              '  '.join(f'{stage + " s/img (CPU)":>20}' for stage, _ in STAGES))
    cuda = '-' if r['cuda_peak_gib'] is None else f"{r['cuda_peak_gib']:.2f}G"
    chunk = {None: 'default', 0: 'all'}.get(r['chunk'], str(r['chunk']))
    print(f"{r['ops']:>8} {r['device']:>6} {r['batch']:>5} {chunk:>7} {r['sec_per_image']:>10.2f} "
          f"{r['sec_per_image_mean']:>11.2f} {r['cpu_sec_per_image']:>9.2f} {r['rss_after_build_gib']:>8.2f}G "
          f"{r['peak_rss_gib']:>7.2f}G {cuda:>9}  " +
          '  '.join(f'{f"{wall:.2f} ({cpu:.2f})":>20}' for wall, cpu in r['stages'].values()), flush=True)


if __name__ == '__main__':
    main()
