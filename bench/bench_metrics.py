"""Seconds per 1,000 images of each metric's stages, on the CPU or a GPU (random-weight detectors).

Stages timed on `--images` random 512 x 512 uint8 images (the resolution of EG3D's FFHQ renders):
- detector forward passes: Inception-v3 (FID, KID, IS), VGG-16 fc7 (PR), ArcFace IR-SE-50 (identity);
- the formulas on their real sizes: FID on 2048-d statistics (once per evaluation), KID with 100
  subsets of 1,000, precision/recall on 1,000 x 1,000 4096-d features;
- the demo network's paired renders (natural + stylised, and two views) per 1,000 samples.
A full fid50k_full is then about 50 x (generator + Inception) + the real set's Inception pass (cached).

Example:

    python -m bench.bench_metrics --device=cpu --images=16 --batch=8
"""

import os
import time

import click
import numpy as np
import torch

import gen_utils
import legacy
from metrics.detectors import extract_features
from metrics.frechet_inception_distance import frechet_distance
from metrics.kernel_inception_distance import kernel_distance
from metrics.metric_options import MetricOptions
from metrics.precision_recall import precision_recall
from training import inference
from training.perceptual import IdentityEncoder

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(fn, reps: int = 1) -> float:
    fn()  # warm-up (lazy initialisation, cuDNN autotuning)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


@click.command()
@click.option('--device', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True)
@click.option('--images', 'num_images', help='Images per timed detector run', metavar='INT',
              type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--batch', help='Images per forward pass', metavar='INT', type=click.IntRange(min=1), default=8,
              show_default=True)
def main(device: str, num_images: int, batch: int):
    """Print a markdown table: stage, seconds."""
    device = torch.device(device)
    opts = MetricOptions(device=device, allow_random_weights=True, weights=dict(inception=None), batch_size=batch)
    images = torch.randint(0, 256, (num_images, 3, 512, 512), dtype=torch.uint8, device=device)
    rows = []

    def detector_pass(name):
        return lambda: [extract_features(opts, name, images[i:i + batch]) for i in range(0, num_images, batch)]

    for name, label in (('inception', 'Inception-v3 pool features (FID, KID, IS), per 1,000 images'),
                        ('vgg16', 'VGG-16 fc7 (PR), per 1,000 images')):
        rows.append((label, _timed(detector_pass(name)) / num_images * 1000))

    arcface = IdentityEncoder(allow_random_weights=True).to(device)
    floats = images.to(torch.float32) / 127.5 - 1
    with torch.no_grad():
        seconds = _timed(lambda: [arcface(floats[i:i + batch]) for i in range(0, num_images, batch)])
    rows.append(('ArcFace IR-SE-50 embedding (identity1k: 2 per sample), per 1,000 images',
                 seconds / num_images * 1000))

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((1000, 2048)).astype(np.float32)
    cov = np.cov(feats, rowvar=False)
    mean = feats.mean(0)
    rows.append(('FID formula on 2048-d statistics (once per evaluation)',
                 _timed(lambda: frechet_distance(mean, cov, mean, cov))))
    rows.append(('KID formula, 100 subsets of 1,000 (once per evaluation)',
                 _timed(lambda: kernel_distance(feats, feats))))
    vgg = np.abs(rng.standard_normal((1000, 4096))).astype(np.float32)
    rows.append(('PR formula, 1,000 x 1,000 4096-d features', _timed(lambda: precision_recall(vgg, vgg))))

    G = legacy.load_generator(os.path.join(REPO_ROOT, gen_utils.DEMO_NETWORK), device)
    z = torch.randn(batch, G.z_dim, device=device)
    c = inference.generator_camera_label(G, 0, 0, device=device).repeat(batch, 1)
    domain = G.domain_names[0] if getattr(G, 'domain_names', None) else None
    with torch.no_grad():
        seconds = _timed(lambda: G(z, c, **inference.domain_kwargs(domain, 1.0)))
    rows.append((f'demo network render ({G.img_resolution} px; 2 per sample in the 3-D metrics), per 1,000',
                 seconds / batch * 1000))

    print(f'| stage ({device.type}, batch {batch}) | seconds |')
    print('|---|---:|')
    for label, seconds in rows:
        print(f'| {label} | {seconds:.1f} |')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
