"""Kernel Inception Distance (Binkowski et al. 2018) as StyleGAN3 computes it.

KID is the unbiased estimate of the squared MMD between real and generated Inception features with
the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over `num_subsets` random subsets of
m = min(num_real, num_gen, max_subset_size) items of each side.
"""

from typing import Optional

import numpy as np

from metrics.feature_stats import compute_feature_stats_for_dataset, compute_feature_stats_for_generator
from metrics.metric_options import MetricOptions, check_num_images

MIN_IMAGES = 2  # the unbiased estimator divides by m - 1


def kernel_distance(real: np.ndarray, gen: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                    seed: Optional[int] = None) -> float:
    """Mean unbiased MMD^2 over random subsets; real (Nr, d), gen (Ng, d) features."""
    d = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)].astype(np.float64)
        y = real[rng.choice(real.shape[0], m, replace=False)].astype(np.float64)
        k_xx_yy = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        # Within-set sums leave out the diagonal (k(x_i, x_i)): that is what makes the estimate unbiased.
        total += (k_xx_yy.sum() - np.diag(k_xx_yy).sum()) / (m - 1) - k_xy.sum() * 2 / m
    return float(total / num_subsets / m)


def compute_kid(opts: MetricOptions, max_real: Optional[int], num_gen: int, num_subsets: int,
                max_subset_size: int) -> float:
    """KID of G's samples (or `opts.image_folder`) against at most `max_real` dataset images."""
    if opts.image_folder is not None:
        check_num_images('KID', MIN_IMAGES, len(opts.image_folder), 'in the --images folder')
    real = compute_feature_stats_for_dataset(opts, 'inception', max_items=max_real, capture_all=True)
    check_num_images('KID', MIN_IMAGES, real.num_items, 'in the dataset (--data)')
    gen = compute_feature_stats_for_generator(opts, 'inception', num_gen, capture_all=True)
    if opts.rank != 0:
        return float('nan')
    return kernel_distance(real.get_all(), gen.get_all(), num_subsets, max_subset_size, seed=opts.seed)
