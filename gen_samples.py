"""Generate portraits (natural and stylised, several views), depth maps and shapes with a network pickle."""

import os
from typing import Any, List, Optional, Tuple, Union

import click
import numpy as np
import torch

import gen_utils
import shape_utils

# ----------------------------------------------------------------------------


def sample_name(head: Union[int, str], alpha: Optional[float], yaw: float, pitch: float) -> str:
    """File stem such as 'seed0003_alpha0.50_yaw+0.40_pitch-0.10' (no alpha part for plain EG3D output);
    `head` is a seed, or the name of a projected latent (--latent)."""
    alpha_part = '' if alpha is None else f'_alpha{alpha:.2f}'
    return f'{head_name(head)}{alpha_part}_yaw{yaw:+.2f}_pitch{pitch:+.2f}'


def head_name(head: Union[int, str]) -> str:
    """'seed0003' for a seed, the latent's name as it is."""
    return f'seed{head:04d}' if isinstance(head, int) else head


@torch.no_grad()
def render_views(G: torch.nn.Module, ws: torch.Tensor, cameras: List[torch.Tensor], render_seed: int,
                 domain_kwargs: dict) -> List[dict]:
    """G.synthesis outputs for one latent `ws` (1, num_ws, w_dim) seen from each (1, 25) camera.

    The tri-planes are computed for the first view and reused for the others (and left in
    G._last_planes for shape extraction). The renderer's random draws (stratified jitter, importance
    sampling) are seeded per view, so every picture is reproducible.
    """
    outputs = []
    for view_idx, c in enumerate(cameras):
        torch.manual_seed(render_seed)
        outputs.append(G.synthesis(ws, c, noise_mode='const', cache_backbone=(view_idx == 0),
                                   use_cached_backbone=(view_idx > 0), **domain_kwargs))
    return outputs


@torch.no_grad()
def density_volume(G: torch.nn.Module, planes: torch.Tensor, resolution: int,
                   chunk_size: int = 2 ** 20) -> np.ndarray:
    """Raw densities (R, R, R), indexed [x, y, z], on a grid filling G's bounding box.

    planes: (1, 96, H, W) tri-planes of one latent (G._last_planes after a `cache_backbone` render).
    Decoding cached planes, rather than calling G.sample_mixed per chunk, runs the backbone once.
    """
    planes = planes.view(len(planes), 3, -1, planes.shape[-2], planes.shape[-1])

    def density(coords: torch.Tensor) -> torch.Tensor:
        # The decoder ignores view directions for density; EG3D passes (0, 0, -1).
        directions = torch.zeros_like(coords)
        directions[..., -1] = -1
        return G.renderer.run_model(planes, G.decoder, coords, directions, G.rendering_kwargs)['sigma']

    return shape_utils.sample_density_volume(density, resolution, G.rendering_kwargs['box_warp'],
                                             chunk_size=chunk_size, device=planes.device)


def save_shape(volume: np.ndarray, stem: str, box_size: float, level: float) -> Tuple[int, int]:
    """Write `stem`.mrc (EG3D's layout) and `stem`.ply (world coordinates); returns (#vertices, #faces)."""
    # Blank the border as EG3D does: tri-plane densities near the box faces are floaters.
    volume = shape_utils.clear_border(volume, int(30 * volume.shape[0] / 256), -1000.0)
    shape_utils.write_mrc(stem + '.mrc', np.flip(volume, 0), voxel_size=box_size / (volume.shape[0] - 1))
    verts, faces = shape_utils.extract_mesh(volume, level, box_size)
    shape_utils.write_ply(stem + '.ply', verts, faces)
    return len(verts), len(faces)

# ----------------------------------------------------------------------------


@click.command()
@click.option('--network', help='Network pickle (path or URL)  [default: the bundled demo network]', metavar='PATH')
@click.option('--seeds', type=gen_utils.SeedList(), help='Random seeds, e.g. 0-7,12', default='0-3',
              show_default=True)
@click.option('--latent', 'latent_path', metavar='FILE.npy|DIR',
              help='Projected w+ latents (projector.py\'s latent.npy, or a folder of them) in place of --seeds')
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=0.7, show_default=True)
@click.option('--trunc-cutoff', 'truncation_cutoff', type=click.IntRange(min=0), help='Truncation cutoff',
              default=14, show_default=True)
@click.option('--outdir', help='Where to save the outputs', type=str, required=True, metavar='DIR')
@click.option('--domain', help='Style domain stored in the network  [default: its first one]', metavar='NAME')
@click.option('--exemplar', help='Style exemplar image (example-based stylisation)', metavar='IMAGE')
@click.option('--alpha', 'alphas', type=gen_utils.FloatList(), metavar='LIST',
              help='Style strengths, one grid row each (0 = natural, 1 = style)  [default: 0,1]')
@click.option('--views', type=gen_utils.ViewList(), default='multi', show_default=True, metavar='VIEWS',
              help=f'yaw:pitch list in radians (e.g. 0:0,0.4:-0.1) or a preset: {", ".join(gen_utils.VIEW_PRESETS)}')
@click.option('--fov-deg', help='Field of view of the camera in degrees', type=click.FloatRange(min=1, max=179),
              default=18.837, show_default=True)
@click.option('--depth', is_flag=True, help='Also save depth maps (16-bit PNG, ray_end..ray_start -> 0..65535)')
@click.option('--shapes', is_flag=True, help='Also save each shape as a density volume (.mrc) and a mesh (.ply)')
@click.option('--shape-res', type=click.IntRange(min=8), default=256, show_default=True,
              help='Voxels per side of the shape volume')
@click.option('--shape-level', type=float, default=10.0, show_default=True,
              help='Density iso-level of the mesh')
@click.option('--ray-chunk', type=click.IntRange(min=1), default=4096, show_default=True,
              help='Rays rendered at once (bounds memory)')
@click.option('--device', 'device_name', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
              show_default=True, help='Where to run')
def generate_images(network: Optional[str], seeds: List[int], latent_path: Optional[str], truncation_psi: float, truncation_cutoff: int,
                    outdir: str, domain: Optional[str], exemplar: Optional[str], alphas: Optional[List[float]],
                    views: List[Tuple[float, float]], fov_deg: float, depth: bool, shapes: bool, shape_res: int,
                    shape_level: float, ray_chunk: int, device_name: str):
    """Generate natural and stylised portraits from several views with a network pickle.

    For every seed: one PNG per (alpha, view), e.g. seed0003_alpha0.50_yaw+0.40_pitch-0.10.png, and
    seed0003_grid.png with one row per alpha and one column per view. Without --network the bundled
    demo network is used.

    Examples:

    \b
    # Natural and stylised heads from three views with the bundled demo network.
    python gen_samples.py --outdir=out

    \b
    # A stored domain at four strengths, five views, depth maps and meshes.
    python gen_samples.py --network=pixar.pkl --domain=pixar --alpha=0,0.5,1,1.5 \\
        --views=wide --seeds=0-7,12 --depth --shapes --outdir=out

    \b
    # Example-based: the style of one exemplar image, frontal view only.
    python gen_samples.py --network=pixar.pkl --exemplar=style.png --views=front --outdir=out

    \b
    # A projected photo (projector.py) with its tuned network: views, depth and the shape of that person.
    python gen_samples.py --network=out/me/network-pti.pkl --latent=out/me/latent.npy --depth --shapes --outdir=out/me
    """
    network_path = gen_utils.resolve_network_path(network)
    device = gen_utils.select_device(device_name)
    G = gen_utils.load_generator(network_path, device)
    G.rendering_kwargs['ray_chunk_size'] = ray_chunk
    domain_arg, domain_label = gen_utils.select_domain(G, domain, exemplar, device)
    rows: List[Any]
    if domain_arg is None:
        if alphas is not None:
            raise click.UsageError('--alpha needs a style domain, but no --domain/--exemplar was given and the '
                                   'network stores none')
        rows = [None]
    else:
        rows = alphas if alphas is not None else [0.0, 1.0]
        print(f'Style "{domain_label}" at alpha {", ".join(f"{a:g}" for a in rows)}.')
    os.makedirs(outdir, exist_ok=True)

    # EG3D conditions the mapping on the frontal camera and renders from the requested ones.
    conditioning = gen_utils.camera_label(G, 0.0, 0.0, fov_deg, device)
    cameras = [gen_utils.camera_label(G, yaw, pitch, fov_deg, device) for yaw, pitch in views]

    # A head is a seed (mapped here) or a projected latent; the renderer's sampling is seeded by the seed, or 0.
    heads: List[Tuple[Union[int, str], int, Optional[torch.Tensor]]]
    if latent_path is not None:
        heads = [(name, 0, ws) for name, ws in gen_utils.load_latents(latent_path, G, device)]
    else:
        heads = [(seed, seed, None) for seed in seeds]
    for head_idx, (head, render_seed, ws) in enumerate(heads):
        print(f'Generating {head_name(head)} ({head_idx + 1}/{len(heads)})...')
        if ws is None:
            z = gen_utils.z_from_seed(render_seed, G.z_dim, device)
            ws = G.mapping(z, conditioning, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        # A stored name or an exemplar becomes a code once per head (the encoder may use the natural ws).
        code = None if domain_arg is None else G.get_domain_code(domain_arg, 1, source_ws=ws)
        tiles = []
        for alpha in rows:
            kwargs = gen_utils.domain_kwargs(code, alpha)
            for (yaw, pitch), out in zip(views, render_views(G, ws, cameras, render_seed, kwargs)):
                stem = os.path.join(outdir, sample_name(head, alpha, yaw, pitch))
                image = gen_utils.image_to_uint8(out['image'])[0]
                gen_utils.save_png(image, stem + '.png')
                tiles.append(image)
                if depth:
                    unit = gen_utils.depth_to_unit(out['image_depth'], G.rendering_kwargs)
                    depth16 = (unit[0, 0] * 65535).round().to(torch.int32).cpu().numpy().astype(np.uint16)
                    gen_utils.save_png(depth16[..., None], stem + '_depth.png')
            if shapes:
                stem = os.path.join(outdir, head_name(head) + ('' if alpha is None else f'_alpha{alpha:.2f}'))
                volume = density_volume(G, G._last_planes, shape_res)  # pylint: disable=protected-access
                num_verts, num_faces = save_shape(volume, stem, G.rendering_kwargs['box_warp'], shape_level)
                print(f'  shape {os.path.basename(stem)}.mrc/.ply: {num_verts} vertices, {num_faces} faces')
        grid = gen_utils.layout_grid(np.stack(tiles), rows=len(rows), cols=len(views))
        gen_utils.save_png(grid, os.path.join(outdir, f'{head_name(head)}_grid.png'))

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    generate_images()  # pylint: disable=no-value-for-parameter
