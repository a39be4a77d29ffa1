"""Multi-view consistency: does a render agree with a second view of the same head?

For each sample (latent z and dataset camera c), G renders the head from c and from c orbited by
+-ORBIT_YAW about the vertical axis through the camera pivot (alternating per sample). Each view
is reprojected into the other with its rendered depth (`metrics.reprojection.view_consistency`)
and the two directions are averaged:
- photo: mean absolute colour difference (images in [0, 1]) where the point is visible in both views;
- depth: mean relative disagreement of the depths, truncated at 0.1, over pixels landing in frame;
- visible: share of those pixels that pass the visibility test (relative depth tolerance 3%).
The final (super-resolved) image is compared; depth is upsampled bilinearly to its resolution.
"""

from typing import Dict, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from camera_utils import turn_camera_label
from metrics.feature_stats import collect_rows
from metrics.metric_options import MetricOptions
from metrics.paired_renders import latent_batches
from metrics.reprojection import view_consistency
from training import inference

ORBIT_YAW = 0.3  # radians, about the yaw spread of FFHQ's cameras
RESULT_NAMES = ('photo', 'depth', 'visible')


def _view(G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, G_kwargs: dict):
    out = G.synthesis(ws, c, **G_kwargs)
    image = (out['image'].clamp(-1, 1) + 1) / 2
    depth = F.interpolate(out['image_depth'], size=image.shape[2:], mode='bilinear', align_corners=False)
    return image, depth


def _rows(opts: MetricOptions, num_gen: int) -> Iterator[np.ndarray]:
    pivot = inference.camera_pivot(opts.G)
    first = 0
    for z, c, seed in latent_batches(opts, num_gen):
        signs = [1.0 if (first + i) % 2 == 0 else -1.0 for i in range(len(z))]
        first += len(z)
        c_b = torch.cat([turn_camera_label(c[i:i + 1], sign * ORBIT_YAW, pivot) for i, sign in enumerate(signs)])
        with torch.no_grad():
            ws = opts.G.mapping(z, c)
            # The same random draws (noise inputs, depth jitter) for both views: only the camera differs.
            with inference.seeded_rng(opts.device, seed):
                image_a, depth_a = _view(opts.G, ws, c, opts.G_kwargs)
            with inference.seeded_rng(opts.device, seed):
                image_b, depth_b = _view(opts.G, ws, c_b, opts.G_kwargs)
        ab = view_consistency(image_a, depth_a, c, image_b, depth_b, c_b)
        ba = view_consistency(image_b, depth_b, c_b, image_a, depth_a, c)
        yield torch.stack([(ab[k] + ba[k]) / 2 for k in RESULT_NAMES], dim=1).cpu().numpy()


def compute_multiview(opts: MetricOptions, num_gen: int) -> Dict[str, float]:
    """{'photo', 'depth', 'visible'} averaged over `num_gen` samples."""
    rows = collect_rows(opts, _rows(opts, num_gen), num_gen, 'multi-view renders')
    return {name: float(value) for name, value in zip(RESULT_NAMES, rows.mean(axis=0))}
