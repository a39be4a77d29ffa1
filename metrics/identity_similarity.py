"""Identity similarity: is the stylised face still the same person as its natural twin?

For each sample (latent z, dataset camera c), the natural render (alpha 0, or the source network)
and the stylised render (the chosen domain and alpha) of the same z and c are embedded by ArcFace
IR-SE-50 (`training.perceptual.IdentityEncoder`, weights `model_ir_se50.pth`); the metric is the
mean cosine similarity of the two unit embeddings (1 = same identity; different people of FFHQ
score about 0 to 0.3).
"""

from typing import Iterator

import numpy as np
import torch

from metrics.detectors import weights_option_hint
from metrics.feature_stats import collect_rows
from metrics.metric_options import MetricOptions
from metrics.paired_renders import check_stylised, latent_batches, render_natural_and_stylised
from training.perceptual import IdentityEncoder


def _rows(opts: MetricOptions, num_gen: int) -> Iterator[np.ndarray]:
    check_stylised(opts)  # before loading the encoder's weights
    with weights_option_hint('arcface'):
        encoder = IdentityEncoder(opts.weights.arcface, allow_random_weights=opts.allow_random_weights)
    encoder = encoder.to(opts.device)
    for z, c, seed in latent_batches(opts, num_gen):
        natural, stylised = render_natural_and_stylised(opts, z, c, seed)
        with torch.no_grad():
            cosine = (encoder(natural['image'].clamp(-1, 1)) * encoder(stylised['image'].clamp(-1, 1))).sum(dim=1)
        yield cosine[:, None].cpu().numpy()


def compute_identity(opts: MetricOptions, num_gen: int) -> float:
    """Mean ArcFace cosine similarity between natural and stylised renders of `num_gen` samples."""
    return float(collect_rows(opts, _rows(opts, num_gen), num_gen, 'identity renders').mean())
