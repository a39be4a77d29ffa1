"""Fréchet Inception Distance (Heusel et al. 2017) as StyleGAN3 computes it.

FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) over Inception-v3 pool features (2048-d),
with covariances normalised by N.
"""

from typing import Optional

import numpy as np
import scipy.linalg

from metrics.feature_stats import compute_feature_stats_for_dataset, compute_feature_stats_for_generator
from metrics.metric_options import MetricOptions, check_num_images

MIN_IMAGES = 2  # a covariance needs two samples


def _psd_eigenvalues_sqrt(values: np.ndarray) -> np.ndarray:
    """Square roots of the eigenvalues of a PSD matrix; those within rounding error of 0 count as 0."""
    tol = max(float(values.max()), 0.0) * len(values) * np.finfo(np.float64).eps
    return np.sqrt(np.where(values > tol, values, 0.0))


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix."""
    values, vectors = scipy.linalg.eigh(sigma)
    return (vectors * _psd_eigenvalues_sqrt(values)) @ vectors.T


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b).

    Tr (S_a S_b)^(1/2) is computed as the sum of the square roots of the eigenvalues of the symmetric
    PSD matrix S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues as S_a S_b: two symmetric
    eigendecompositions, several times faster than scipy.linalg.sqrtm on 2048 x 2048 and exact for
    the singular covariances of small sets, where sqrtm's Schur iteration loses accuracy.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    root_a = _sqrt_psd(np.asarray(sigma_a, np.float64))
    eigenvalues = scipy.linalg.eigvalsh(root_a @ np.asarray(sigma_b, np.float64) @ root_a)
    trace_root = _psd_eigenvalues_sqrt(eigenvalues).sum()
    return float(np.square(mu_a - mu_b).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_root)


def compute_fid(opts: MetricOptions, max_real: Optional[int], num_gen: int,
                G_kwargs: Optional[dict] = None) -> float:
    """FID of G's samples (or `opts.image_folder`) against the first `max_real` dataset images (None = all).

    G_kwargs override `opts.G_kwargs` for the samples (the style FID renders with alpha=1).
    """
    if opts.image_folder is not None:
        check_num_images('FID', MIN_IMAGES, len(opts.image_folder), 'in the --images folder')
    real = compute_feature_stats_for_dataset(opts, 'inception', max_items=max_real, capture_mean_cov=True)
    check_num_images('FID', MIN_IMAGES, real.num_items, 'in the dataset (--data)')
    gen = compute_feature_stats_for_generator(opts, 'inception', num_gen, capture_mean_cov=True, G_kwargs=G_kwargs)
    if opts.rank != 0:
        return float('nan')
    return frechet_distance(*real.get_mean_cov(), *gen.get_mean_cov())
