"""Render orbit / zoom videos of natural or stylised heads with a network pickle, frame by frame."""

import hashlib
import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import click
import imageio
import numpy as np
import scipy.interpolate
import torch
from tqdm import tqdm

import dnnlib
import gen_utils
import legacy
from dnnlib import cli
from training import inference

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
        return (inference.depth_to_unit(out['image_depth'], rendering_kwargs) * 2 - 1).repeat(1, 3, 1, 1)
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
        codes_keys.append(code)
        planes_keys.append(G.synthesize_planes(ws_keys[k], noise_mode='const', **inference.domain_kwargs(code, alpha)))
    planes_keys = torch.stack(planes_keys)
    codes_keys = None if domain is None else torch.stack(codes_keys)

    def blend(frame_weights: np.ndarray, keys: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if keys is None or num_keys == 1:
            return None if keys is None else keys[0]
        return torch.einsum('k,k...->...', torch.as_tensor(frame_weights, dtype=keys.dtype, device=keys.device), keys)

    for frame_weights, c in zip(weights, cameras):
        out = inference.seeded_synthesis(G, blend(frame_weights, ws_keys), c.repeat(num_cells, 1), render_seed,
                                         planes=blend(frame_weights, planes_keys),
                                         **inference.domain_kwargs(blend(frame_weights, codes_keys), alpha))
        pictures = inference.image_to_uint8(_to_picture(out, image_mode, G.rendering_kwargs))
        yield gen_utils.layout_grid(pictures, rows=grid[1], cols=grid[0])

# ----------------------------------------------------------------------------


def heads_name(heads: Sequence[Union[int, str]], max_chars: int = 48) -> str:
    """The heads of a video in its file name: seeds as 'seeds' + runs of consecutive seeds 'a-b' joined
    by '_' ('0_5' vs '0-5'); projected latents (--latent) by their names joined by '+'.

    A list too long for a file name becomes first-last, count and a hash of the whole list.
    """
    if all(isinstance(head, int) for head in heads):
        prefix, runs, start = 'seeds', [], 0
        for i in range(1, len(heads) + 1):
            if i == len(heads) or heads[i] != heads[i - 1] + 1:
                runs.append(f'{heads[start]}' if i - 1 == start else f'{heads[start]}-{heads[i - 1]}')
                start = i
        text = '_'.join(runs)
    else:
        prefix, text = '', '+'.join(map(str, heads))
    if len(text) > max_chars:
        digest = hashlib.sha1(','.join(map(str, heads)).encode()).hexdigest()[:8]
        text = f'{heads[0]}to{heads[-1]}_n{len(heads)}_{digest}'
    return prefix + text


def video_name(heads: Sequence[Union[int, str]], grid: Tuple[int, int], camera_preset: str, image_mode: str,
               style: Optional[str], alpha: Optional[float]) -> str:
    """File name such as 'seeds0-3_2x2_orbit_image_pixar_alpha1.00.mp4'."""
    style_part = '' if style is None else f'_{style}_alpha{gen_utils.exact_number(alpha)}'
    return f'{heads_name(heads)}_{grid[0]}x{grid[1]}_{camera_preset}_{image_mode}{style_part}.mp4'


def write_video(path: str, frames: Iterator[np.ndarray], num_frames: int, fps: int) -> None:
    """Encode frames to an mp4 under a temporary name, renamed to `path` once complete."""
    with dnnlib.util.atomic_output(path) as tmp_path:
        # macro_block_size=2: libx264 needs even sizes; a larger block would silently rescale the frames.
        video = imageio.get_writer(tmp_path, mode='I', fps=fps, codec='libx264', bitrate='10M', macro_block_size=2)
        try:
            for frame in tqdm(frames, total=num_frames, desc=os.path.basename(path), unit='frame'):
                video.append_data(frame)
        finally:
            # imageio leaves a writer open after an error; ffmpeg would then write the file after
            # it is removed. Closing here makes ffmpeg finish before the temporary file goes.
            video.close()

# ----------------------------------------------------------------------------


@click.command()
@gen_utils.generation_options(seeds_default='0', seeds_help='Random seeds, e.g. 0-3',
                              alpha_help='Style strength(s), one video each (0 = natural, 1 = style)  [default: 1]',
                              outdir_help='Output directory')
@click.option('--grid', type=gen_utils.GridSize(), help='Grid of heads, columns x rows', default='1x1',
              show_default=True, metavar='WxH')
@click.option('--num-keyframes', type=click.IntRange(min=1), metavar='INT',
              help='Seeds each cell moves through  [default: #seeds / (W*H)]')
@click.option('--w-frames', type=click.IntRange(min=1), help='Frames per keyframe', default=120, show_default=True)
@click.option('--camera', 'camera_preset', type=click.Choice(CAMERA_PATHS), default='orbit', show_default=True,
              help='Camera path')
@click.option('--image-mode', type=click.Choice(['image', 'image_depth', 'image_raw']), default='image',
              show_default=True, help='Which output to film')
@click.option('--fps', type=click.IntRange(min=1), default=30, show_default=True, help='Frames per second')
def generate_videos(network: Optional[str], seeds: List[int], latent_path: Optional[str], truncation_psi: float,
                    truncation_cutoff: int,
                    domain: Optional[str], exemplar: Optional[str], alphas: Optional[List[float]], fov_deg: float,
                    ray_chunk: int, device_name: str, outdir: str, overwrite: bool, grid: Tuple[int, int],
                    num_keyframes: Optional[int], w_frames: int, camera_preset: str, image_mode: str, fps: int):
    """Render a video of heads seen along a camera path, written frame by frame to an mp4.

    The video has num_keyframes * w_frames frames; each grid cell moves through its keyframe
    seeds (looping, cubic interpolation) while the camera follows the path once. One mp4 per alpha,
    written under a temporary name and renamed when complete; existing videos are not replaced
    without --overwrite.

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
    # Orbit of a projected photo (projector.py), natural and stylised by its tuned network.
    python gen_videos.py --network=out/me/network-pti.pkl --latent=out/me/latent.npy --alpha=0,1 \\
        --outdir=out/me-videos
    """
    if latent_path is None:
        grid_seeds(seeds, grid, num_keyframes)  # checked before the network loads
    network_path = gen_utils.check_generation_inputs(network, domain, exemplar, outdir, latent_path)
    device = gen_utils.select_device(device_name)
    G = legacy.load_generator(network_path, device)
    # A head is a seed (mapped below) or a projected latent (its ws as they are).
    loaded = [] if latent_path is None else gen_utils.load_latents(latent_path, G, device)
    heads: List[Union[int, str]] = [name for name, _ in loaded] if loaded else seeds
    keyframes = grid_seeds(list(range(len(heads))), grid, num_keyframes)  # indices into heads
    G.rendering_kwargs['ray_chunk_size'] = ray_chunk
    domain_arg, domain_label = gen_utils.select_domain(G, domain, exemplar, device)
    if domain_arg is None and alphas is not None:
        raise click.UsageError('--alpha needs a style domain, but no --domain/--exemplar was given and the '
                               'network stores none')
    video_alphas = (alphas or [1.0]) if domain_arg is not None else [None]
    videos = [os.path.join(outdir, video_name(heads, grid, camera_preset, image_mode, domain_label, alpha))
              for alpha in video_alphas]
    cli.check_outputs(videos, overwrite, sources=[network_path, exemplar, latent_path])
    cli.prepare_outdir(outdir)

    conditioning = inference.generator_camera_label(G, 0.0, 0.0, fov_deg, device)
    cameras = [inference.generator_camera_label(G, yaw, pitch, fov, device)
               for yaw, pitch, fov in camera_path(camera_preset, keyframes.shape[0] * w_frames, fov_deg)]
    if loaded:
        ws = torch.cat([loaded[int(i)][1] for i in keyframes.ravel()])
    else:
        z = torch.cat([inference.z_from_seed(seeds[int(i)], G.z_dim, device) for i in keyframes.ravel()])
        ws = G.mapping(z, conditioning.repeat(len(z), 1), truncation_psi=truncation_psi,
                       truncation_cutoff=truncation_cutoff)
    ws_keys = ws.reshape(*keyframes.shape, *ws.shape[1:])
    weights = keyframe_weights(keyframes.shape[0], w_frames)

    for alpha, mp4 in zip(video_alphas, videos):
        frames = render_frames(G, ws_keys, cameras, weights, image_mode, grid, domain=domain_arg,
                               alpha=1.0 if alpha is None else alpha)
        write_video(mp4, frames, len(cameras), fps)
        print(f'Wrote {mp4} ({len(cameras)} frames)')

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    cli.run(generate_videos)
