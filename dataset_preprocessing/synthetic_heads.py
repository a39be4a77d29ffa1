"""A 3-D-consistent synthetic source/style pair: procedural heads ray-marched with known cameras.

The same seed gives the same heads and cameras in both looks, so the depth maps are identical:
- `natural` (the source domain): Lambertian shading, skin/hair/eye colours of real people;
- `toon` (the target style): cel shading in three flat bands, dark outlines, a pastel palette.

Output is EG3D's dataset format (see `training/dataset.py`): a zip of `img00000000.png`, ... and
`dataset.json` with the 25-number camera labels, plus ground truth that EG3D's loader ignores:
`depth/img00000000.npy` (H, W) float32 ray distance from the camera to the surface (inf on the
background; EG3D's `image_depth` measures the same distance), and `heads.json` (the shape
parameters and yaw/pitch of every image).

Examples (from the repository root):

\b
# 100 natural heads at 64x64 (seconds):
python -m dataset_preprocessing.synthetic_heads --dest=~/datasets/heads-natural.zip --style=natural --count=100

\b
# The same heads and cameras, toon look, 128x128:
python -m dataset_preprocessing.synthetic_heads --dest=~/datasets/heads-toon.zip --style=toon --count=100 \\
    --resolution=128

In Python: `make_synthetic_dataset('heads.zip', style='toon', count=16, resolution=64, seed=0)`, or
`make_synthetic_pair(outdir, count=16)` for both looks.
"""

import dataclasses
import io
import json
import math
import os
import zipfile
from typing import Dict, Tuple

import click
import numpy as np
import PIL.Image

import camera_utils
import dnnlib
from dataset_preprocessing import head_sdf

STYLES = ('natural', 'toon')
MAX_YAW = 0.5     # radians, about FFHQ's range
MAX_PITCH = 0.25

_BOUND_RADIUS = 0.8       # every head lies inside this sphere around the origin
_MARCH_EPS = 3e-4         # sphere tracing stops this close to the surface
_MAX_STEPS = 96
_NEWTON_STEPS = 2
_STEP_SCALE = 0.95
_LIGHT = np.array([0.0, 0.5, 1.0]) / math.sqrt(1.25)  # x-symmetric, so mirrored scenes are lit alike

# RGB albedos per material and style; an image picks one entry of each list.
_PALETTES = {
    'natural': {
        head_sdf.SKIN: [(233, 196, 170), (210, 161, 124), (163, 112, 80), (110, 72, 50), (241, 210, 190)],
        head_sdf.HAIR: [(40, 30, 25), (95, 60, 35), (180, 140, 90), (120, 50, 25), (20, 18, 18)],
        head_sdf.IRIS: [(70, 100, 140), (90, 60, 35), (80, 110, 70)],
        head_sdf.BACKGROUND: [(200, 205, 210), (170, 180, 190), (215, 210, 200)],
    },
    'toon': {
        head_sdf.SKIN: [(255, 214, 180), (220, 190, 255), (190, 240, 210), (240, 180, 130), (255, 190, 200)],
        head_sdf.HAIR: [(220, 40, 140), (30, 160, 170), (250, 140, 20), (40, 50, 140), (120, 200, 40)],
        head_sdf.IRIS: [(140, 60, 220), (230, 170, 20), (20, 170, 230)],
        head_sdf.BACKGROUND: [(255, 245, 200), (200, 240, 255), (240, 220, 255)],
    },
}
_FIXED_ALBEDO = {head_sdf.EYE_WHITE: (240, 240, 235), head_sdf.PUPIL: (15, 15, 20)}
_LIPS = {'natural': (170, 80, 80), 'toon': (230, 60, 80)}
_OUTLINE = np.array([35, 20, 40], dtype=np.float64)
_TOON_BANDS = (0.15, 0.55)      # n.l thresholds between the three bands
_TOON_LEVELS = (0.55, 0.8, 1.0)


def pixel_rays(cam2world: np.ndarray, intrinsics: np.ndarray, resolution: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rays through pixel centres, row-major: origins (R*R, 3) and unit directions (R*R, 3).

    cam2world (4, 4) OpenCV axes; intrinsics (3, 3) normalised by the image size (EG3D's ray sampler
    convention: pixel (row i, column j) has uv = ((j + 0.5) / R, (i + 0.5) / R)).
    """
    uv = (np.arange(resolution) + 0.5) / resolution
    v, u = np.meshgrid(uv, uv, indexing='ij')
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    cam_dirs = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
    dirs = cam_dirs @ cam2world[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origins = np.broadcast_to(cam2world[:3, 3], dirs.shape).copy()
    return origins, dirs


def _bound_interval(origins: np.ndarray, dirs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Entry and exit distances (M,) of unit rays through the bounding sphere; entry > exit = miss."""
    b = np.sum(origins * dirs, axis=-1)
    disc = b * b - (np.sum(origins * origins, axis=-1) - _BOUND_RADIUS ** 2)
    root = np.sqrt(np.maximum(disc, 0))
    return np.where(disc > 0, -b - root, np.inf), np.where(disc > 0, -b + root, -np.inf)


def trace_depth(sdf: head_sdf.HeadSDF, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Distance (M,) along each unit ray to the first surface crossing; inf on a miss.

    Sphere tracing finds the first crossing to within `_MARCH_EPS`; Newton steps on
    f(t) = sdf(o + t d) then make |f| tiny (f' = normal . d; skipped at grazing angles).
    """
    t, t_exit = _bound_interval(origins, dirs)
    depth = np.full(t.shape, np.inf)
    active = np.flatnonzero(t < t_exit)
    t = t[active]
    for _ in range(_MAX_STEPS):
        if active.size == 0:
            break
        d = sdf(origins[active] + t[:, None] * dirs[active])
        hit = d < _MARCH_EPS
        depth[active[hit]] = t[hit]
        # The SDF only approximates the distance away from the surface: under-step to never overshoot.
        t = t + _STEP_SCALE * d
        keep = ~hit & (t < t_exit[active])
        active, t = active[keep], t[keep]

    hit = np.flatnonzero(np.isfinite(depth))
    for _ in range(_NEWTON_STEPS):
        points = origins[hit] + depth[hit, None] * dirs[hit]
        slope = np.sum(sdf.normals(points) * dirs[hit], axis=-1)
        steep = slope < -0.1
        depth[hit[steep]] -= sdf(points[steep]) / slope[steep]
    return depth


def _image_edges(depth: np.ndarray, material: np.ndarray) -> np.ndarray:
    """(R, R) bool: head pixels next to the background, a depth jump, or a hair/skin boundary."""
    hair = material == head_sdf.HAIR
    fg = np.isfinite(depth)
    d = np.where(fg, depth, 1e3)
    padded = [np.pad(a, 1, mode='edge') for a in (d, fg, hair)]  # the frame border draws no line
    size = depth.shape[0]
    edges = np.zeros_like(fg)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):  # the 4 neighbours
        nb_d, nb_fg, nb_hair = (a[dy:dy + size, dx:dx + size] for a in padded)
        edges |= fg & ((~nb_fg) | (np.abs(nb_d - d) > 0.05) | (nb_fg & (nb_hair != hair)))
    return edges


@dataclasses.dataclass
class TracedHead:
    """What a camera sees of a head, before any look is applied (R = resolution).

    depth: (R, R) float64 ray distance, inf on the background; material: (R, R) int64 head_sdf
    material ids (BACKGROUND where no ray hits); lambert: (R, R) n.l of the light, 0 on the background.
    """
    depth: np.ndarray
    material: np.ndarray
    lambert: np.ndarray


def trace_head(shape: head_sdf.HeadShape, camera_label: np.ndarray, resolution: int) -> TracedHead:
    """Ray-march one head from `camera_label` ((25,) EG3D label) at `resolution` x `resolution`."""
    camera_label = np.asarray(camera_label, dtype=np.float64)
    if camera_label.shape != (25,):
        raise ValueError(f'camera label must be (25,): 16 numbers of cam2world then 9 of the intrinsics; '
                         f'got {camera_label.shape}')
    sdf = head_sdf.HeadSDF(shape)
    origins, dirs = pixel_rays(camera_label[:16].reshape(4, 4), camera_label[16:].reshape(3, 3), resolution)
    depth = trace_depth(sdf, origins, dirs)
    hit = np.isfinite(depth)
    points = origins[hit] + depth[hit, None] * dirs[hit]
    material = np.full(depth.shape, head_sdf.BACKGROUND)
    material[hit] = sdf.materials(points)
    lambert = np.zeros(depth.shape)
    lambert[hit] = np.clip(sdf.normals(points) @ _LIGHT, 0, 1)
    square = (resolution, resolution)
    return TracedHead(depth=depth.reshape(square), material=material.reshape(square),
                      lambert=lambert.reshape(square))


def shade_head(traced: TracedHead, style: str, colors: Dict[int, Tuple[int, int, int]]) -> np.ndarray:
    """The image (R, R, 3) uint8 of a traced head in `style`; colors: albedo per material id (see `pick_colors`)."""
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got "{style}"')
    albedo = np.array([colors[m] for m in range(head_sdf.LIPS + 1)], dtype=np.float64)[traced.material]
    if style == 'natural':
        shade = 0.35 + 0.65 * traced.lambert
    else:
        shade = np.asarray(_TOON_LEVELS)[np.digitize(traced.lambert, _TOON_BANDS)]
    hit = np.isfinite(traced.depth)
    rgb = np.where(hit[..., None], albedo * shade[..., None], albedo)
    if style == 'toon':
        rgb[_image_edges(traced.depth, traced.material)] = _OUTLINE
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render_head(shape: head_sdf.HeadShape, camera_label: np.ndarray, resolution: int, style: str,
                colors: Dict[int, Tuple[int, int, int]]) -> Tuple[np.ndarray, np.ndarray]:
    """Renders one head. Returns (image (R, R, 3) uint8, depth (R, R) float32 ray distance, inf = background).

    camera_label: (25,) EG3D label; colors: albedo per material id (see `pick_colors`).
    """
    traced = trace_head(shape, camera_label, resolution)
    return shade_head(traced, style, colors), traced.depth.astype(np.float32)


def pick_colors(style: str, choice: np.ndarray) -> Dict[int, Tuple[int, int, int]]:
    """Albedo (RGB 0-255) per material id, from 4 palette indices (skin, hair, iris, background)."""
    palette = _PALETTES[style]
    keys = (head_sdf.SKIN, head_sdf.HAIR, head_sdf.IRIS, head_sdf.BACKGROUND)
    colors = {k: palette[k][int(i) % len(palette[k])] for k, i in zip(keys, choice)}
    return {**colors, **_FIXED_ALBEDO, head_sdf.LIPS: _LIPS[style]}


def sample_head(seed: int, index: int) -> Tuple[head_sdf.HeadShape, float, float, np.ndarray]:
    """(shape, yaw, pitch, palette choice (4,)) of image `index`; independent of the style."""
    rng = np.random.default_rng([seed, index])
    shape = head_sdf.HeadShape.sample(rng)
    yaw, pitch = rng.uniform([-MAX_YAW, -MAX_PITCH], [MAX_YAW, MAX_PITCH])
    return shape, float(yaw), float(pitch), rng.integers(0, 1000, size=4)


def make_synthetic_dataset(dest: str, style: str, count: int, resolution: int = 64, seed: int = 0,
                           overwrite: bool = False) -> str:
    """Writes `count` heads of `style` as an EG3D-format zip at `dest` and returns its path."""
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got "{style}"')
    if count < 1 or resolution < 8:
        raise ValueError(f'need count >= 1 and resolution >= 8, got count={count}, resolution={resolution}')
    if not dest.lower().endswith('.zip'):
        raise ValueError(f'dest must be a .zip path, got "{dest}"')
    if os.path.isdir(dest):
        raise ValueError(f'dest {dest} is a folder; give a .zip file name')
    if os.path.exists(dest) and not overwrite:
        raise FileExistsError(f'{dest} already exists; pass overwrite=True (--overwrite) to replace it')
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)

    labels, heads = [], []
    # Written under a temporary name: an interrupted run leaves an old --dest as it was.
    with dnnlib.util.atomic_output(dest) as tmp_path, zipfile.ZipFile(tmp_path, 'w',
                                                                      compression=zipfile.ZIP_STORED) as zf:
        for index in range(count):
            shape, yaw, pitch, choice = sample_head(seed, index)
            label = camera_utils.camera_label(yaw, pitch)[0].numpy()
            image, depth = render_head(shape, label, resolution, style, pick_colors(style, choice))
            fname = f'img{index:08d}.png'
            png, npy = io.BytesIO(), io.BytesIO()
            PIL.Image.fromarray(image).save(png, format='png', compress_level=0, optimize=False)
            np.save(npy, depth)
            zf.writestr(fname, png.getvalue())
            zf.writestr(f'depth/img{index:08d}.npy', npy.getvalue())
            labels.append([fname, label.tolist()])
            heads.append({'file': fname, 'yaw': yaw, 'pitch': pitch, 'shape': dataclasses.asdict(shape)})
        zf.writestr('dataset.json', json.dumps({'labels': labels}))
        zf.writestr('heads.json', json.dumps({'style': style, 'seed': seed, 'resolution': resolution,
                                              'heads': heads}, indent=1))
    return dest


def make_synthetic_pair(outdir: str, count: int, resolution: int = 64, seed: int = 0,
                        overwrite: bool = False) -> Dict[str, str]:
    """Both styles of the same heads: {'natural': outdir/heads-natural.zip, 'toon': outdir/heads-toon.zip}."""
    return {style: make_synthetic_dataset(os.path.join(outdir, f'heads-{style}.zip'), style, count, resolution,
                                          seed, overwrite) for style in STYLES}


def load_depths(path: str) -> np.ndarray:
    """(N, R, R) float32 ground-truth depth maps of a synthetic dataset zip, in image order."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith('depth/') and n.endswith('.npy'))
        if not names:
            raise ValueError(f'{path} holds no depth/*.npy maps; was it written by make_synthetic_dataset?')
        return np.stack([np.load(io.BytesIO(zf.read(n))) for n in names])


@click.command(help=__doc__)
@click.option('--dest', help='Output zip', metavar='ZIP', required=True)
@click.option('--style', help='Look of the heads', type=click.Choice(STYLES), required=True)
@click.option('--count', help='Number of images', metavar='INT', type=click.IntRange(min=1), default=100,
              show_default=True)
@click.option('--resolution', help='Image size', metavar='INT', type=click.IntRange(min=8), default=64,
              show_default=True)
@click.option('--seed', help='Random seed (same seed = same heads and cameras in every style)', metavar='INT',
              type=int, default=0, show_default=True)
@click.option('--overwrite', help='Replace an existing --dest', is_flag=True)
def main(dest: str, style: str, count: int, resolution: int, seed: int, overwrite: bool) -> None:
    try:
        path = make_synthetic_dataset(os.path.expanduser(dest), style, count, resolution, seed, overwrite)
    except (FileExistsError, ValueError) as err:
        raise click.ClickException(str(err))
    click.echo(f'wrote {count} {style} heads ({resolution}x{resolution}) to {path}')


if __name__ == '__main__':
    main()
