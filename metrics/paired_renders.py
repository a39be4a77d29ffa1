"""Renders that the 3-D and stylisation metrics compare: the same latent, camera and random draws twice.

Sample item i gets the latent and dataset camera of `metrics.image_sources.latents_and_cameras`;
each batch is rendered under `seeded_rng(device, seed)` with its `batch_seed`, once per side of
the comparison (natural and stylised, or two views), so that only what is compared differs.
"""

from typing import Iterator, Tuple

import torch

from metrics.image_sources import batch_seed, dataset_labels, latents_and_cameras
from metrics.metric_options import MetricOptions, shard
from training.inference import seeded_rng


def check_renders_a_network(opts: MetricOptions) -> None:
    """Refuse render metrics without a network (with --images)."""
    if opts.G is None:
        raise ValueError('this metric renders views of a network: give --network (it does not work with --images)')


def latent_batches(opts: MetricOptions, num_items: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor, int]]:
    """(z, c, seed) batches of this process's share of sample items 0..num_items-1.

    See `latents_and_cameras`; render each batch under `seeded_rng(opts.device, seed)`.
    """
    check_renders_a_network(opts)
    labels = dataset_labels(opts)
    indices = shard(range(num_items), opts.num_gpus, opts.rank)
    for start in range(0, len(indices), opts.batch_size):
        batch = indices[start:start + opts.batch_size]
        yield (*latents_and_cameras(opts, labels, batch), batch_seed(opts, batch[0]))


def check_stylised(opts: MetricOptions) -> None:
    """Refuse natural-vs-stylised metrics without a style (or a separate natural network) to compare."""
    check_renders_a_network(opts)
    if opts.G_source is None and opts.G_kwargs.get('domain') is None:
        raise ValueError('this metric compares natural and stylised renders: give a network with a stored domain '
                         '(--domain) or an exemplar encoder (--exemplar), or the natural network (--source-network)')


def render_natural_and_stylised(opts: MetricOptions, z: torch.Tensor, c: torch.Tensor, seed: int
                                ) -> Tuple[dict, dict]:
    """G's outputs for the same latent, camera and random draws, without and with the style.

    Natural: the source network `opts.G_source` when given, else G with alpha = 0 (the DAM makes that
    exactly the source EG3D). Stylised: G with the chosen domain and alpha (default 1).
    """
    check_stylised(opts)
    stylised_kwargs = dict(opts.G_kwargs)
    with torch.no_grad():
        with seeded_rng(opts.device, seed):
            stylised = opts.G(z, c, **stylised_kwargs)
        with seeded_rng(opts.device, seed):
            if opts.G_source is not None:
                natural = opts.G_source(z, c)
            else:
                natural = opts.G(z, c, **dict(stylised_kwargs, alpha=0))
    return natural, stylised
