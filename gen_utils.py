"""The command-line layer the generator scripts share (gen_samples.py, gen_videos.py, projector.py,
calc_metrics.py, visualizer.py): option types and their checks, the device, the network path, the
style domain, latent files, picture grids and PNG files. Rendering itself is `training.inference`.
"""

import os
import re
from typing import Any, Callable, List, Optional, Tuple

import click
import numpy as np
import PIL.Image
import torch

import camera_utils
import dnnlib
from dnnlib import cli, image_io
from training import inference
from training.content import LATENT_EXTS, LatentError, read_latent

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
DEMO_NETWORK = os.path.join('networks', 'pstyle3d-demo-synthetic.pkl')

# More seeds than this in one run is almost certainly a typo (and a list of 1e9 seeds fills the RAM).
MAX_SEEDS = 1_000_000

# Named camera sets for --views: (yaw, pitch) in radians relative to the frontal view.
VIEW_PRESETS = {
    'front': [(0.0, 0.0)],
    'multi': [(0.4, -0.2), (0.0, -0.2), (-0.4, -0.2)],  # EG3D's gen_samples triple
    'wide': [(0.6, -0.1), (0.3, -0.1), (0.0, -0.1), (-0.3, -0.1), (-0.6, -0.1)],
}

# ----------------------------------------------------------------------------
# Option types: a malformed value stops click with "Invalid value for '--x': <why>".


class SeedList(click.ParamType):
    """Comma-separated non-negative integers and inclusive ranges: `0-7,12` -> [0, ..., 7, 12].

    Bounds and the total count are checked before any range is expanded.
    """
    name = 'seeds'

    def convert(self, value: Any, param, ctx) -> List[int]:
        if isinstance(value, list):
            return value
        spans = []
        for part in str(value).split(','):
            part = part.strip()
            if m := re.fullmatch(r'(\d+)-(\d+)', part):
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    self.fail(f'range "{part}" is empty (start > end)', param, ctx)
            elif re.fullmatch(r'\d+', part):
                lo = hi = int(part)
            else:
                self.fail(f'"{part}" in "{value}" is not a seed; expected non-negative integers or ranges '
                          f'such as 0-7,12', param, ctx)
            if hi >= 2 ** 32:
                self.fail(f'"{part}": seeds must be below 2**32 (numpy RandomState seeds)', param, ctx)
            spans.append((lo, hi))
        count = sum(hi - lo + 1 for lo, hi in spans)
        if count > MAX_SEEDS:
            self.fail(f'"{value}" is {count} seeds; give at most {MAX_SEEDS} per run', param, ctx)
        return [seed for lo, hi in spans for seed in range(lo, hi + 1)]


class FloatList(click.ParamType):
    """Comma-separated numbers: `0,0.5,1` -> [0.0, 0.5, 1.0]."""
    name = 'floats'

    def convert(self, value: Any, param, ctx) -> List[float]:
        if isinstance(value, list):
            return value
        out = []
        for part in str(value).split(','):
            try:
                number = float(part)
            except ValueError:
                self.fail(f'"{part.strip()}" in "{value}" is not a number; expected comma-separated numbers '
                          f'such as 0,0.5,1', param, ctx)
            if not np.isfinite(number):
                self.fail(f'"{part.strip()}" is not a finite number', param, ctx)
            out.append(number)
        return out


class ViewList(click.ParamType):
    """Camera views as `yaw:pitch` pairs in radians (`0:0,0.4:-0.1`) or a preset name (see VIEW_PRESETS)."""
    name = 'views'

    def convert(self, value: Any, param, ctx) -> List[Tuple[float, float]]:
        if isinstance(value, list):
            return value
        if value in VIEW_PRESETS:
            return list(VIEW_PRESETS[value])
        views = []
        for part in str(value).split(','):
            pieces = part.split(':')
            try:
                yaw, pitch = (float(p) for p in pieces)
            except ValueError:
                self.fail(f'"{part}" is not a yaw:pitch pair of numbers (radians), e.g. 0.4:-0.1; or use a preset: '
                          f'{", ".join(VIEW_PRESETS)}', param, ctx)
            if not (np.isfinite(yaw) and np.isfinite(pitch)):
                self.fail(f'"{part}" is not a pair of finite numbers', param, ctx)
            views.append((yaw, pitch))
        return views


class GridSize(click.ParamType):
    """Video grid `WxH` (columns x rows), e.g. `2x2`."""
    name = 'grid'

    def convert(self, value: Any, param, ctx) -> Tuple[int, int]:
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r'(\d+)x(\d+)', str(value))
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            self.fail(f'"{value}" is not a grid size; expected WxH with positive integers, e.g. 2x2', param, ctx)
        return int(m.group(1)), int(m.group(2))

# ----------------------------------------------------------------------------
# Options that gen_samples.py and gen_videos.py share.


def generation_options(seeds_default: str, seeds_help: str, alpha_help: str, outdir_help: str) -> Callable:
    """Decorator adding the options both generation CLIs take (network, latents, domain, camera, device, output)."""
    options = [
        click.option('--network', help='Network pickle (path or URL)  [default: the bundled demo network]',
                     metavar='PATH', callback=cli.expand_path),
        click.option('--seeds', type=SeedList(), help=seeds_help, default=seeds_default, show_default=True),
        click.option('--latent', 'latent_path', metavar='FILE.npy|DIR', callback=cli.expand_path,
                     help='Projected w+ latents (projector.py\'s latent.npy, or a folder of them) in place of --seeds'),
        click.option('--trunc', 'truncation_psi', type=cli.FiniteFloat(), help='Truncation psi', default=0.7,
                     show_default=True),
        click.option('--trunc-cutoff', 'truncation_cutoff', type=click.IntRange(min=0), help='Truncation cutoff',
                     default=14, show_default=True),
        click.option('--domain', help='Style domain stored in the network  [default: its first one]', metavar='NAME'),
        click.option('--exemplar', help='Style exemplar image (example-based stylisation)', metavar='IMAGE',
                     callback=cli.expand_path),
        click.option('--alpha', 'alphas', type=FloatList(), metavar='LIST', help=alpha_help),
        click.option('--fov-deg', help='Field of view of the camera in degrees', type=cli.FiniteFloat(min=1, max=179),
                     default=camera_utils.FOV_DEG, show_default=True),
        click.option('--ray-chunk', type=click.IntRange(min=1), default=4096, show_default=True,
                     help='Rays rendered at once (bounds memory)'),
        click.option('--device', 'device_name', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
                     show_default=True, help='Where to run'),
        click.option('--outdir', help=outdir_help, type=str, required=True, metavar='DIR', callback=cli.expand_path),
        click.option('--overwrite', is_flag=True, help='Replace outputs of the same names in --outdir'),
    ]

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


def exact_number(value: float, signed: bool = False) -> str:
    """`value` with two decimals for file names, or every digit it needs when two would round it.

    0.5 -> '0.50', 0.004 -> '0.004'; so distinct values always give distinct names.
    """
    sign = '+' if signed else ''
    text = f'{value:{sign}.2f}'
    return text if float(text) == value else f'{value:{sign}}'

# ----------------------------------------------------------------------------
# Device and network.


def select_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU (and say so); 'cuda' without a GPU is an error."""
    if name == 'cuda' and not torch.cuda.is_available():
        raise click.UsageError('--device=cuda, but PyTorch sees no CUDA GPU; use --device=cpu or --device=auto')
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cpu':
        print('Running on the CPU (no GPU in use): expect seconds to minutes per image at full resolution.')
    return torch.device(name)


def resolve_network_path(network: Optional[str]) -> str:
    """The --network value, or the bundled demo network when it is omitted; local files must exist."""
    if network is None:
        network = os.path.join(REPO_ROOT, DEMO_NETWORK)
        if not os.path.isfile(network):
            raise click.UsageError(f'no --network given and the bundled demo network {DEMO_NETWORK} is not in '
                                   f'this checkout; pass --network=PATH_OR_URL to a network pickle')
        return network
    if not dnnlib.util.is_url(network) and not os.path.isfile(network):
        raise click.BadParameter(f'network pickle "{network}" does not exist', param_hint="'--network'")
    return network


def check_generation_inputs(network: Optional[str], domain: Optional[str], exemplar: Optional[str],
                            outdir: str, latent_path: Optional[str] = None) -> str:
    """The checks that need no network: the network's path, the style choice, the exemplar and latent
    files and the output folder. Returns the network path (see `resolve_network_path`)."""
    if domain is not None and exemplar is not None:
        raise click.UsageError('give either --domain or --exemplar, not both')
    if latent_path is not None and not os.path.exists(latent_path):
        raise click.BadParameter(f'"{latent_path}" does not exist', param_hint="'--latent'")
    if exemplar is not None and not os.path.isfile(exemplar):
        raise click.BadParameter(f'exemplar image "{exemplar}" does not exist', param_hint="'--exemplar'")
    cli.check_writable_folder(outdir, '--outdir')
    return resolve_network_path(network)


# ----------------------------------------------------------------------------
# Domain selection.


def load_exemplar(path: str, device: torch.device) -> torch.Tensor:
    """An exemplar image file as a (1, 3, H, W) float tensor in [-1, 1].

    Read by `dnnlib.image_io.read_image`: 16-bit and float images are scaled, transparent pixels
    are composited over white.
    """
    try:
        image = image_io.read_image(path)
    except image_io.ImageReadError as err:
        raise click.BadParameter(str(err), param_hint="'--exemplar'") from err
    return inference.image_to_tensor(image, device)


def select_domain(G: torch.nn.Module, domain: Optional[str], exemplar: Optional[str],
                  device: torch.device) -> Tuple[Any, Optional[str]]:
    """The `domain=` argument for G and a label for file names.

    Returns (None, None) for plain EG3D output, (name, name) for a domain stored in the network,
    or ((1, 3, H, W) image, file stem) for an exemplar. Without --domain/--exemplar, a network that
    stores domains uses its first one, so that the demo network shows its style out of the box.
    """
    names = list(getattr(G, 'domain_names', None) or [])
    if domain is not None and exemplar is not None:
        raise click.UsageError('give either --domain or --exemplar, not both')
    if exemplar is not None:
        if getattr(G, 'encoder', None) is None:
            raise click.BadParameter('this network has no exemplar encoder (it was trained without one); use '
                                     f'--domain with one of its stored domains: {", ".join(names) or "none"}',
                                     param_hint="'--exemplar'")
        return load_exemplar(exemplar, device), os.path.splitext(os.path.basename(exemplar))[0]
    if domain is None:
        if not names:
            return None, None
        print(f'No --domain given: using "{names[0]}", the first domain stored in the network.')
        domain = names[0]
    if domain not in names:
        stored = ', '.join(names) if names else 'none (it is a plain EG3D network)'
        raise click.BadParameter(f'unknown domain "{domain}"; domains stored in this network: {stored}',
                                 param_hint="'--domain'")
    return domain, domain


# ----------------------------------------------------------------------------
# Latent files.


def load_latents(path: str, G: torch.nn.Module, device: torch.device) -> List[Tuple[str, torch.Tensor]]:
    """(file stem, ws (1, num_ws, w_dim)) of a w+ latent file (projector.py's latent.npy) or of each .npy / .pt
    file of a folder (sorted), e.g. a projector.py --target=DIR run's latents/ folder."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(LATENT_EXTS))
        if not files:
            raise click.BadParameter(f'folder "{path}" holds no {"/".join(LATENT_EXTS)} latent files',
                                     param_hint="'--latent'")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise click.BadParameter(f'"{path}" does not exist', param_hint="'--latent'")
    latents = []
    for file in files:
        try:
            ws = read_latent(file, G.backbone.num_ws, G.w_dim)
        except LatentError as err:
            raise click.BadParameter(str(err), param_hint="'--latent'") from err
        stem = os.path.splitext(os.path.basename(file))[0]
        if stem == 'latent':  # projector.py's <outdir>/<photo>/latent.npy: name it after the photo
            stem = os.path.basename(os.path.dirname(os.path.abspath(file))) or stem
        latents.append((stem, ws.unsqueeze(0).to(device)))
    return latents


# ----------------------------------------------------------------------------
# Pictures.


def layout_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, H, W, C) pictures, row-major -> one (rows*H, cols*W, C) picture."""
    n, h, w, c = images.shape
    if n != rows * cols:
        raise ValueError(f'a {rows}x{cols} grid needs {rows * cols} pictures, got {n}')
    return images.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_png(array: np.ndarray, path: str) -> None:
    """Save (H, W, 3) uint8 as RGB, (H, W, 1) uint8 as grey, (H, W, 1) uint16 as 16-bit grey (atomically)."""
    if array.shape[-1] == 1:
        array = array[..., 0]
    with dnnlib.util.atomic_output(path) as tmp_path:
        PIL.Image.fromarray(array).save(tmp_path, format='png')
