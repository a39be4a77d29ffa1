"""Improved precision and recall (Kynkäänniemi et al. 2019) as StyleGAN3 computes it.

Each feature set spans a manifold: the union of balls around its points, the radius of a point's
ball being the distance to its k-th nearest other point. Precision is the share of generated
features inside the real manifold, recall the share of real features inside the generated one.
Features: VGG-16 fc7 (4096-d), `metrics.detectors.VGG16Detector`.
"""

from typing import Dict, Optional

import numpy as np
import torch

from metrics.feature_stats import compute_feature_stats_for_dataset, compute_feature_stats_for_generator
from metrics.metric_options import MetricOptions, check_num_images


def _kth_distances(manifold: torch.Tensor, nhood_size: int, batch_size: int) -> torch.Tensor:
    """(N,) distance of each manifold point to its nhood_size-th nearest neighbour (itself excluded)."""
    kth = [torch.cdist(manifold[i:i + batch_size], manifold).kthvalue(nhood_size + 1, dim=1).values
           for i in range(0, manifold.shape[0], batch_size)]
    return torch.cat(kth)


def _inside(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(P,) bool: probe within the radius of at least one manifold point."""
    return torch.cat([(torch.cdist(probes[i:i + batch_size], manifold) <= radii[None]).any(dim=1)
                      for i in range(0, probes.shape[0], batch_size)])


def precision_recall(real: np.ndarray, gen: np.ndarray, nhood_size: int = 3, batch_size: int = 10000
                     ) -> Dict[str, float]:
    """{'precision', 'recall'} of gen (Ng, d) against real (Nr, d) features, k = nhood_size."""
    real_t, gen_t = torch.from_numpy(real).to(torch.float32), torch.from_numpy(gen).to(torch.float32)
    out = {}
    for name, manifold, probes in (('precision', real_t, gen_t), ('recall', gen_t, real_t)):
        radii = _kth_distances(manifold, nhood_size, batch_size)
        out[name] = float(_inside(probes, manifold, radii, batch_size).to(torch.float64).mean())
    return out


def compute_pr(opts: MetricOptions, max_real: Optional[int], num_gen: int, nhood_size: int
               ) -> Dict[str, float]:
    """Precision and recall of G's samples (or `opts.image_folder`) against at most `max_real` dataset images."""
    if opts.image_folder is not None:
        check_num_images('precision/recall', nhood_size + 1, len(opts.image_folder), 'in the --images folder')
    real = compute_feature_stats_for_dataset(opts, 'vgg16', max_items=max_real, capture_all=True)
    check_num_images('precision/recall', nhood_size + 1, real.num_items, 'in the dataset (--data)')
    gen = compute_feature_stats_for_generator(opts, 'vgg16', num_gen, capture_all=True)
    if opts.rank != 0:
        return dict(precision=float('nan'), recall=float('nan'))
    return precision_recall(real.get_all(), gen.get_all(), nhood_size)
