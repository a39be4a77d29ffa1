"""Render orbit / zoom videos of natural or stylised heads with a network pickle, frame by frame."""

import os
from typing import Any, Iterator, List, Optional, Tuple

import click
import imageio
import numpy as np
import scipy.interpolate
import torch
from tqdm import tqdm

import gen_utils

CAMERA_PATHS = ('orbit', 'yaw', 'zoom', 'static')

# ----------------------------------------------------------------------------


def camera_path(path: str, num_frames: int, fov_deg: float) -> List[Tuple[float, float, float]]:
    """(yaw, pitch, fov_deg) per frame; one period of the motion over `num_frames` frames.

    orbit: EG3D's ellipse (yaw +-0.35, pitch -0.05 +- 0.25); yaw: a level left-right sweep (+-0.5);
    zoom: frontal camera narrowing its field of view to 60% and back (moving the camera instead
    would push the head out of the renderer's fixed [ray_start, ray_end] depth range); static: frontal.
    """
    if path not in CAMERA_PATHS:
        raise ValueError(f'unknown camera path "{path}"; expected one of {", ".join(CAMERA_PATHS)}')
    phase = 2 * np.pi * np.arange(num_frames) / num_frames
    zeros = np.zeros(num_frames)
    yaw, pitch, fov = zeros, zeros, np.full(num_frames, fov_deg)
    if path == 'orbit':
        yaw, pitch = 0.35 * np.sin(phase), -0.05 + 0.25 * np.cos(phase)
    elif path == 'yaw':
        yaw = 0.5 * np.sin(phase)
    elif path == 'zoom':
        fov = fov_deg * (1 - 0.4 * (1 - np.cos(phase)) / 2)
    return [(float(y), float(p), float(f)) for y, p, f in zip(yaw, pitch, fov)]


def keyframe_weights(num_keyframes: int, w_frames: int, wraps: int = 2) -> np.ndarray:
    """(num_keyframes * w_frames, num_keyframes) weights of each keyframe in each frame.

    EG3D interpolates the latents of looping keyframes with a cubic spline (tiled `wraps` times on
    both sides). A spline is linear in its data, so interpolating the identity gives weights that
    reproduce it exactly for any per-keyframe tensor, tri-planes included.
    """
    x = np.arange(-num_keyframes * wraps, num_keyframes * (wraps + 1))
    if num_keyframes == 1:
        return np.ones((w_frames, 1))
    identity = np.tile(np.eye(num_keyframes), [wraps * 2 + 1, 1])
    spline = scipy.interpolate.interp1d(x, identity, kind='cubic', axis=0)
    return spline(np.arange(num_keyframes * w_frames) / w_frames)


def grid_seeds(seeds: List[int], grid: Tuple[int, int], num_keyframes: Optional[int]) -> np.ndarray:
    """Seeds per (keyframe, cell) as a (K, grid_h * grid_w) array, cells row-major, as EG3D assigns them."""
    grid_w, grid_h = grid
    cells = grid_w * grid_h
    if num_keyframes is None:
        if len(seeds) % cells != 0:
            raise click.UsageError(f'{len(seeds)} seeds do not fill a {grid_w}x{grid_h} grid evenly; give a '
                                   f'multiple of {cells} seeds or set --num-keyframes')
        num_keyframes = len(seeds) // cells
    all_seeds = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * cells)], dtype=np.int64)
    return all_seeds.reshape(cells, num_keyframes).T


def _to_picture(out: dict, image_mode: str, rendering_kwargs: dict) -> torch.Tensor:
    """The requested output of G.synthesis as (N, 3, H, W) in [-1, 1]."""
    if image_mode == 'image_depth':
        return (gen_utils.depth_to_unit(out['image_depth'], rendering_kwargs) * 2 - 1).repeat(1, 3, 1, 1)
    return out[image_mode]


@torch.no_grad()
def render_frames(G: torch.nn.Module, ws_keys: torch.Tensor, cameras: List[torch.Tensor], weights: np.ndarray,
                  image_mode: str, grid: Tuple[int, int], domain: Any = None, alpha: float = 1.0,
                  render_seed: int = 0) -> Iterator[np.ndarray]:
    """Yield the video frames, each a (grid_h * H, grid_w * W, 3) uint8 picture of all cells.

    ws_keys: (K, N, num_ws, w_dim) keyframe latents of the N cells; cameras: (1, 25) label per frame;
    weights: (T, K) keyframe weights per frame; domain/alpha: G's domain input (None = plain EG3D).
    The domain code and the tri-planes of every keyframe are computed once; a frame blends them (and
    the latents, for super-resolution) with its weights and only renders and super-resolves. The
    renderer is re-seeded every frame so that its jitter does not flicker.
    """
    if ws_keys.ndim != 4:
        raise ValueError(f'ws_keys must be (K, N, num_ws, w_dim), got shape {tuple(ws_keys.shape)}')
    num_keys, num_cells = ws_keys.shape[:2]
    if weights.shape != (len(cameras), num_keys):
        raise ValueError(f'weights must be (frames, keyframes) = ({len(cameras)}, {num_keys}), got {weights.shape}')
    if num_cells != grid[0] * grid[1]:
        raise ValueError(f'{num_cells} cells do not fill a {grid[0]}x{grid[1]} grid')
    codes_keys, planes_keys = [], []
    for k in range(num_keys):
        # A stored name or an exemplar becomes a code here, so the encoder runs once per keyframe.
        code = None if domain is None else G.get_domain_code(domain, num_cells, source_ws=ws_keys[k])
        G.synthesis(ws_keys[k], cameras[0].repeat(num_cells, 1), noise_mode='const', cache_backbone=True,
                    **gen_utils.domain_kwargs(code, alpha))
        codes_keys.append(code)
        planes_keys.append(G._last_planes)  # pylint: disable=protected-access
    planes_keys = torch.stack(planes_keys)
    codes_keys = None if domain is None else torch.stack(codes_keys)

    def blend(frame_weights: np.ndarray, keys: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if keys is None or num_keys == 1:
            return None if keys is None else keys[0]
        return torch.einsum('k,k...->...', torch.as_tensor(frame_weights, dtype=keys.dtype, device=keys.device), keys)

    for frame_weights, c in zip(weights, cameras):
        # EG3D's synthesis renders from G._last_planes when use_cached_backbone is set.
        G._last_planes = blend(frame_weights, planes_keys)  # pylint: disable=protected-access
        torch.manual_seed(render_seed)
        out = G.synthesis(blend(frame_weights, ws_keys), c.repeat(num_cells, 1), noise_mode='const',
                          use_cached_backbone=True, **gen_utils.domain_kwargs(blend(frame_weights, codes_keys), alpha))
        pictures = gen_utils.image_to_uint8(_to_picture(out, image_mode, G.rendering_kwargs))
        yield gen_utils.layout_grid(pictures, rows=grid[1], cols=grid[0])

# ----------------------------------------------------------------------------


@click.command()
@click.option('--network', help='Network pickle (path or URL)  [default: the bundled demo network]', metavar='PATH')
@click.option('--seeds', type=gen_utils.SeedList(), help='Random seeds, e.g. 0-3', default='0', show_default=True)
@click.option('--latent', 'latent_path', metavar='FILE.npy|DIR',
              help='Projected w+ latents (projector.py\'s latent.npy, or a folder of them) in place of --seeds')
@click.option('--grid', type=gen_utils.GridSize(), help='Grid of heads, columns x rows', default='1x1',
              show_default=True, metavar='WxH')
@click.option('--num-keyframes', type=click.IntRange(min=1), metavar='INT',
              help='Seeds each cell moves through  [default: #seeds / (W*H)]')
@click.option('--w-frames', type=click.IntRange(min=1), help='Frames per keyframe', default=120, show_default=True)
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=0.7, show_default=True)
@click.option('--trunc-cutoff', 'truncation_cutoff', type=click.IntRange(min=0), help='Truncation cutoff',
              default=14, show_default=True)
@click.option('--domain', help='Style domain stored in the network  [default: its first one]', metavar='NAME')
@click.option('--exemplar', help='Style exemplar image (example-based stylisation)', metavar='IMAGE')
@click.option('--alpha', 'alphas', type=gen_utils.FloatList(), metavar='LIST',
              help='Style strength(s), one video each (0 = natural, 1 = style)  [default: 1]')
@click.option('--camera', 'camera_preset', type=click.Choice(CAMERA_PATHS), default='orbit', show_default=True,
              help='Camera path')
@click.option('--fov-deg', help='Field of view in degrees', type=click.FloatRange(min=1, max=179),
              default=18.837, show_default=True)
@click.option('--image-mode', type=click.Choice(['image', 'image_depth', 'image_raw']), default='image',
              show_default=True, help='Which output to film')
@click.option('--fps', type=click.IntRange(min=1), default=30, show_default=True, help='Frames per second')
@click.option('--ray-chunk', type=click.IntRange(min=1), default=4096, show_default=True,
              help='Rays rendered at once (bounds memory)')
@click.option('--outdir', help='Output directory', type=str, required=True, metavar='DIR')
@click.option('--device', 'device_name', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
              show_default=True, help='Where to run')
def generate_videos(network: Optional[str], seeds: List[int], latent_path: Optional[str], grid: Tuple[int, int], num_keyframes: Optional[int],
                    w_frames: int, truncation_psi: float, truncation_cutoff: int, domain: Optional[str],
                    exemplar: Optional[str], alphas: Optional[List[float]], camera_preset: str, fov_deg: float,
                    image_mode: str, fps: int, ray_chunk: int, outdir: str, device_name: str):
    """Render a video of heads seen along a camera path, written frame by frame to an mp4.

    The video has num_keyframes * w_frames frames; each grid cell moves through its keyframe
    seeds (looping, cubic interpolation) while the camera follows the path once. One mp4 per alpha.

    Examples:

    \b
    # Orbit around one stylised head of the bundled demo network.
    python gen_videos.py --outdir=out

    \b
    # A 2x2 grid, each cell morphing through 2 seeds, natural and stylised videos, depth.
    python gen_videos.py --network=pixar.pkl --domain=pixar --seeds=0-7 --grid=2x2 \\
        --alpha=0,1 --image-mode=image_depth --outdir=out

    \b
    # Zoom in on a head stylised like one exemplar image.
    python gen_videos.py --network=pixar.pkl --exemplar=style.png --camera=zoom --outdir=out

    \b
    # Orbit of a projected photo (projector.py), stylised by its tuned network.
    python gen_videos.py --network=out/me/network-pti.pkl --latent=out/me/latent.npy --alpha=0,1 --outdir=out/me
    """
    network_path = gen_utils.resolve_network_path(network)
    device = gen_utils.select_device(device_name)
    G = gen_utils.load_generator(network_path, device)
    latents = None if latent_path is None else gen_utils.load_latents(latent_path, G, device)
    # With --latent the keyframes are indices into the latent list instead of seeds.
    keyframe_seeds = grid_seeds(seeds if latents is None else list(range(len(latents))), grid, num_keyframes)
    G.rendering_kwargs['ray_chunk_size'] = ray_chunk
    domain_arg, domain_label = gen_utils.select_domain(G, domain, exemplar, device)
    if domain_arg is None and alphas is not None:
        raise click.UsageError('--alpha needs a style domain, but no --domain/--exemplar was given and the '
                               'network stores none')
    os.makedirs(outdir, exist_ok=True)

    conditioning = gen_utils.camera_label(G, 0.0, 0.0, fov_deg, device)
    cameras = [gen_utils.camera_label(G, yaw, pitch, fov, device)
               for yaw, pitch, fov in camera_path(camera_preset, keyframe_seeds.shape[0] * w_frames, fov_deg)]
    if latents is None:
        z = torch.cat([gen_utils.z_from_seed(int(s), G.z_dim, device) for s in keyframe_seeds.ravel()])
        ws = G.mapping(z, conditioning.repeat(len(z), 1), truncation_psi=truncation_psi,
                       truncation_cutoff=truncation_cutoff)
    else:
        ws = torch.cat([latents[int(i)][1] for i in keyframe_seeds.ravel()])
    ws_keys = ws.reshape(*keyframe_seeds.shape, *ws.shape[1:])
    weights = keyframe_weights(keyframe_seeds.shape[0], w_frames)

    if latents is None:
        grid_name = f'seeds{seeds[0]}' + (f'-{seeds[-1]}' if len(seeds) > 1 else '')
    else:
        grid_name = latents[0][0] + (f'-{latents[-1][0]}' if len(latents) > 1 else '')
    for alpha in (alphas or [1.0]) if domain_arg is not None else [None]:
        alpha_part = '' if alpha is None else f'_{domain_label}_alpha{alpha:.2f}'
        mp4 = os.path.join(outdir, f'{grid_name}_{grid[0]}x{grid[1]}_{camera_preset}_{image_mode}{alpha_part}.mp4')
        frames = render_frames(G, ws_keys, cameras, weights, image_mode, grid, domain=domain_arg,
                               alpha=1.0 if alpha is None else alpha)
        # macro_block_size=2: libx264 needs even sizes; a larger block would silently rescale the frames.
        with imageio.get_writer(mp4, mode='I', fps=fps, codec='libx264', bitrate='10M', macro_block_size=2) as video:
            for frame in tqdm(frames, total=len(cameras), desc=os.path.basename(mp4), unit='frame'):
                video.append_data(frame)
        print(f'Wrote {mp4} ({len(cameras)} frames)')

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    generate_videos()  # pylint: disable=no-value-for-parameter
