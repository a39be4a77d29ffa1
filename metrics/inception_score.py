"""Inception Score (Salimans et al. 2016) as StyleGAN3 computes it.

IS = exp(E_x KL(p(y|x) || p(y))) over Inception-v3 class probabilities (1008 classes, softmax
without the output bias), computed on `num_splits` equal parts of the samples: mean and std.
"""

from typing import Tuple

import numpy as np

from metrics.feature_stats import compute_feature_stats_for_generator
from metrics.metric_options import MetricOptions, check_num_images


def inception_score(probs: np.ndarray, num_splits: int) -> Tuple[float, float]:
    """(mean, std) of the per-split scores; probs (N, C) rows summing to 1."""
    n = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits].astype(np.float64)
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(part) - np.log(marginal))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts: MetricOptions, num_gen: int, num_splits: int) -> Tuple[float, float]:
    """IS of G's samples (or of every image of `opts.image_folder`)."""
    if opts.image_folder is not None:
        check_num_images('IS', num_splits, len(opts.image_folder), 'in the --images folder')
    gen = compute_feature_stats_for_generator(opts, 'inception_probs', num_gen, capture_all=True)
    if opts.rank != 0:
        return float('nan'), float('nan')
    return inception_score(gen.get_all(), num_splits)
