"""Geometry preservation: how far the stylised head's shape moved from the natural one.

For each sample (latent z, dataset camera c), the stylised render (chosen domain and alpha) is
compared with the natural render of the same z and c: alpha 0 of the same network (the source EG3D
by construction of the DAM) or, when a source network is given (networks without a DAM, such as
the fine-tuning baseline), that network's render:
- depth: mean |d_stylised - d_natural| / (ray_end - ray_start) over the rendered depth map;
- density: sum |s_stylised - s_natural| / sum s_natural over NUM_POINTS points drawn uniformly in
  the tri-plane volume (the cube of side box_warp), s = softplus(sigma - 1) as the ray marcher reads
  the decoder's sigma.
"""

from typing import Dict, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from metrics.feature_stats import collect_rows
from metrics.metric_options import MetricOptions
from metrics.paired_renders import latent_batches, render_natural_and_stylised
from training.inference import seeded_rng

NUM_POINTS = 4096


def _densities(G: torch.nn.Module, ws: torch.Tensor, points: torch.Tensor, **G_kwargs) -> torch.Tensor:
    """(N, M) volume densities of G at points (N, M, 3)."""
    sigma = G.sample_mixed(points, torch.zeros_like(points), ws, **G_kwargs)['sigma'][..., 0]
    return F.softplus(sigma - 1)


def _rows(opts: MetricOptions, num_gen: int) -> Iterator[np.ndarray]:
    G = opts.G
    near, far = G.rendering_kwargs['ray_start'], G.rendering_kwargs['ray_end']
    if not all(isinstance(v, (int, float)) for v in (near, far)):
        raise ValueError(f'geometry metrics need numeric ray_start / ray_end, got {near!r} / {far!r}')
    box = G.rendering_kwargs.get('box_warp', 1)
    gen = torch.Generator().manual_seed(opts.seed + 7919 * opts.rank)
    for z, c, seed in latent_batches(opts, num_gen):
        natural, stylised = render_natural_and_stylised(opts, z, c, seed)
        points = ((torch.rand([len(z), NUM_POINTS, 3], generator=gen) - 0.5) * box).to(opts.device)
        with torch.no_grad():
            with seeded_rng(opts.device, seed):
                dens_s = _densities(G, G.mapping(z, c), points, **opts.G_kwargs)
            with seeded_rng(opts.device, seed):
                if opts.G_source is not None:
                    dens_n = _densities(opts.G_source, opts.G_source.mapping(z, c), points)
                else:
                    dens_n = _densities(G, G.mapping(z, c), points, **dict(opts.G_kwargs, alpha=0))
        depth = (stylised['image_depth'] - natural['image_depth']).abs().flatten(1).mean(dim=1) / (far - near)
        density = (dens_s - dens_n).abs().sum(dim=1) / dens_n.sum(dim=1).clamp(min=1e-8)
        yield torch.stack([depth, density], dim=1).cpu().numpy()


def compute_geometry(opts: MetricOptions, num_gen: int) -> Dict[str, float]:
    """{'depth', 'density'}: stylised vs natural (the source network's render when `opts.G_source` is set)."""
    rows = collect_rows(opts, _rows(opts, num_gen), num_gen, 'geometry renders')
    return dict(depth=float(rows[:, 0].mean()), density=float(rows[:, 1].mean()))
