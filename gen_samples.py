"""Generate portraits (natural and stylised, several views), depth maps and shapes with a network pickle."""

import os
from typing import Any, List, Optional, Tuple, Union

import click
import numpy as np
import torch

import gen_utils
import legacy
import shape_utils
from dnnlib import cli
from training import inference

# ----------------------------------------------------------------------------


def head_name(head: Union[int, str]) -> str:
    """'seed0003' for a seed; a projected latent's name (--latent) as it is."""
    return f'seed{head:04d}' if isinstance(head, int) else head


def sample_name(head: Union[int, str], style: Optional[str], alpha: Optional[float], yaw: float, pitch: float) -> str:
    """File stem such as 'seed0003_pixar_alpha0.50_yaw+0.40_pitch-0.10'.

    `head` is a seed or a latent's name; `style` is the domain name or the exemplar's file stem (no
    style or alpha part for plain EG3D output); numbers keep every digit that two decimals would round away.
    """
    return f'{shape_name(head, style, alpha)}_yaw{gen_utils.exact_number(yaw, signed=True)}' \
           f'_pitch{gen_utils.exact_number(pitch, signed=True)}'


def shape_name(head: Union[int, str], style: Optional[str], alpha: Optional[float]) -> str:
    """File stem of one shape, e.g. 'seed0003_pixar_alpha0.50'."""
    style_part = '' if style is None else f'_{style}_alpha{gen_utils.exact_number(alpha)}'
    return head_name(head) + style_part


def grid_name(head: Union[int, str], style: Optional[str]) -> str:
    """File stem of one head's grid, e.g. 'seed0003_pixar_grid'."""
    return head_name(head) + ('' if style is None else f'_{style}') + '_grid'


def save_shape(volume: np.ndarray, stem: str, box_size: float, level: float) -> Tuple[int, int]:
    """Write `stem`.mrc (EG3D's layout) and `stem`.ply (world coordinates); returns (#vertices, #faces).

    The mesh is extracted before either file is written, so a level without a surface writes nothing.
    """
    # Blank the border as EG3D does: tri-plane densities near the box faces are floaters.
    volume = shape_utils.clear_border(volume, shape_utils.border_width(volume.shape[0]), shape_utils.EMPTY_DENSITY)
    try:
        verts, faces = shape_utils.extract_mesh(volume, level, box_size)
    except ValueError as err:
        raise click.ClickException(f'--shape-level: {err}; choose a level inside that range') from err
    shape_utils.write_mrc(stem + '.mrc', np.flip(volume, 0), voxel_size=box_size / (volume.shape[0] - 1))
    shape_utils.write_ply(stem + '.ply', verts, faces)
    return len(verts), len(faces)


def output_paths(outdir: str, heads: List[Union[int, str]], style: Optional[str], rows: List[Optional[float]],
                 views: List[Tuple[float, float]], depth: bool, shapes: bool) -> List[str]:
    """Every file one run writes, in the order it writes them (heads: seeds or latent names)."""
    paths = []
    for head in heads:
        for alpha in rows:
            for yaw, pitch in views:
                stem = os.path.join(outdir, sample_name(head, style, alpha, yaw, pitch))
                paths += [stem + '.png'] + ([stem + '_depth.png'] if depth else [])
            if shapes:
                stem = os.path.join(outdir, shape_name(head, style, alpha))
                paths += [stem + '.mrc', stem + '.ply']
        paths.append(os.path.join(outdir, grid_name(head, style) + '.png'))
    return paths

# ----------------------------------------------------------------------------


@click.command()
@gen_utils.generation_options(seeds_default='0-3', seeds_help='Random seeds, e.g. 0-7,12',
                              alpha_help='Style strengths, one grid row each (0 = natural, 1 = style)  [default: 0,1]',
                              outdir_help='Where to save the outputs')
@click.option('--views', type=gen_utils.ViewList(), default='multi', show_default=True, metavar='VIEWS',
              help=f'yaw:pitch list in radians (e.g. 0:0,0.4:-0.1) or a preset: {", ".join(gen_utils.VIEW_PRESETS)}')
@click.option('--depth', is_flag=True, help='Also save depth maps (16-bit PNG, ray_end..ray_start -> 0..65535)')
@click.option('--shapes', is_flag=True, help='Also save each shape as a density volume (.mrc) and a mesh (.ply)')
@click.option('--shape-res', type=click.IntRange(min=8), default=256, show_default=True,
              help='Voxels per side of the shape volume')
@click.option('--shape-level', type=cli.FiniteFloat(), default=10.0, show_default=True,
              help='Density iso-level of the mesh')
def generate_images(network: Optional[str], seeds: List[int], latent_path: Optional[str], truncation_psi: float,
                    truncation_cutoff: int, domain: Optional[str], exemplar: Optional[str],
                    alphas: Optional[List[float]], fov_deg: float,
                    ray_chunk: int, device_name: str, outdir: str, overwrite: bool,
                    views: List[Tuple[float, float]], depth: bool, shapes: bool, shape_res: int,
                    shape_level: float):
    """Generate natural and stylised portraits from several views with a network pickle.

    For every seed, or projected latent (--latent), one PNG per (alpha, view), e.g.
    seed0003_pixar_alpha0.50_yaw+0.40_pitch-0.10.png (the style part is the domain name or the
    exemplar's file name), and seed0003_pixar_grid.png with one row per alpha and one column per view.
    Without --network the bundled demo network is used. Existing files are not replaced without --overwrite.

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
    python gen_samples.py --network=out/me/network-pti.pkl --latent=out/me/latent.npy --depth --shapes \\
        --outdir=out/me-views
    """
    network_path = gen_utils.check_generation_inputs(network, domain, exemplar, outdir, latent_path)
    if shapes:
        shape_utils.require_mcubes('--shapes')
    device = gen_utils.select_device(device_name)
    G = legacy.load_generator(network_path, device)
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
    # A head is a seed (mapped below) or a projected latent (its ws as they are).
    loaded = [] if latent_path is None else gen_utils.load_latents(latent_path, G, device)
    latents = dict(loaded)
    heads: List[Union[int, str]] = [name for name, _ in loaded] if loaded else seeds
    cli.check_outputs(output_paths(outdir, heads, domain_label, rows, views, depth, shapes), overwrite,
                      sources=[network_path, exemplar, latent_path])
    cli.prepare_outdir(outdir)

    # EG3D conditions the mapping on the frontal camera and renders from the requested ones.
    conditioning = inference.generator_camera_label(G, 0.0, 0.0, fov_deg, device)
    cameras = [inference.generator_camera_label(G, yaw, pitch, fov_deg, device) for yaw, pitch in views]

    for head_idx, head in enumerate(heads):
        print(f'Generating {head_name(head)} ({head_idx + 1}/{len(heads)})...')
        if isinstance(head, int):
            z = inference.z_from_seed(head, G.z_dim, device)
            ws = G.mapping(z, conditioning, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        else:
            ws = latents[head]
        # The renderer's random draws are seeded by the seed, or by 0 for a latent.
        render_seed = head if isinstance(head, int) else 0
        # A stored name or an exemplar becomes a code once per head (the encoder may use the natural ws).
        code = None if domain_arg is None else G.get_domain_code(domain_arg, 1, source_ws=ws)
        tiles = []
        for alpha in rows:
            kwargs = inference.domain_kwargs(code, alpha)
            planes = G.synthesize_planes(ws, noise_mode='const', **kwargs)
            for (yaw, pitch), out in zip(views, inference.render_views(G, ws, planes, cameras, render_seed, kwargs)):
                stem = os.path.join(outdir, sample_name(head, domain_label, alpha, yaw, pitch))
                image = inference.image_to_uint8(out['image'])[0]
                gen_utils.save_png(image, stem + '.png')
                tiles.append(image)
                if depth:
                    unit = inference.depth_to_unit(out['image_depth'], G.rendering_kwargs)
                    depth16 = (unit[0, 0] * 65535).round().to(torch.int32).cpu().numpy().astype(np.uint16)
                    gen_utils.save_png(depth16[..., None], stem + '_depth.png')
            if shapes:
                stem = os.path.join(outdir, shape_name(head, domain_label, alpha))
                volume = shape_utils.density_volume(G, planes, shape_res)
                num_verts, num_faces = save_shape(volume, stem, G.rendering_kwargs['box_warp'], shape_level)
                print(f'  shape {os.path.basename(stem)}.mrc/.ply: {num_verts} vertices, {num_faces} faces')
        grid = gen_utils.layout_grid(np.stack(tiles), rows=len(rows), cols=len(views))
        gen_utils.save_png(grid, os.path.join(outdir, grid_name(head, domain_label) + '.png'))

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    cli.run(generate_images)
