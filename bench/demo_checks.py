"""The measurements behind the demo network's model card (docs/demo_network.md): faces found by
MediaPipe's face mesh and toon-look statistics in the demo's renders (bench/demo_face_check.py), and
the depth table (bench/demo_depth_check.py).
"""

from typing import Dict, List, Sequence

import numpy as np
import torch

import camera_utils
from dataset_preprocessing import synthetic_heads
from dataset_preprocessing.face_landmarks import FaceMeshDetector
from training import inference
from training.source_fit import HeadViews, downsample_depth

# Seeds, alphas and yaws (radians, pitch 0) of the demo's face check (bench/demo_face_check.py and its test).
CHECK_SEEDS = tuple(range(8))
CHECK_ALPHAS = (0.0, 1.0)
CHECK_YAWS = (0.0, 0.35)


@torch.no_grad()
def check_renders(G: torch.nn.Module, seeds: Sequence[int] = CHECK_SEEDS, alphas: Sequence[float] = CHECK_ALPHAS,
                  yaws: Sequence[float] = CHECK_YAWS, truncation_psi: float = 0.7) -> Dict[tuple, np.ndarray]:
    """{(alpha, yaw): (len(seeds), R, R, 3) uint8} renders as gen_samples.py draws them (its
    inference.render_views, the mapping conditioned on the frontal camera), with G's first stored domain."""
    device = torch.device('cpu')
    fov = camera_utils.FOV_DEG
    frontal = inference.generator_camera_label(G, 0.0, 0.0, fov, device)
    cameras = [inference.generator_camera_label(G, yaw, 0.0, fov, device) for yaw in yaws]
    rows: Dict[tuple, List[np.ndarray]] = {(a, y): [] for a in alphas for y in yaws}
    for seed in seeds:
        ws = G.mapping(inference.z_from_seed(seed, G.z_dim, device), frontal, truncation_psi=truncation_psi)
        code = G.get_domain_code(G.domain_names[0], 1, source_ws=ws)
        for alpha in alphas:
            kwargs = inference.domain_kwargs(code, alpha)
            planes = G.synthesize_planes(ws, noise_mode='const', **kwargs)
            for yaw, out in zip(yaws, inference.render_views(G, ws, planes, cameras, seed, kwargs)):
                rows[(alpha, yaw)].append(inference.image_to_uint8(out['image'])[0])
    return {key: np.stack(images) for key, images in rows.items()}


def face_counts(rows: Dict[tuple, np.ndarray]) -> Dict[tuple, int]:
    """{row: how many of its images (M, R, R, 3) uint8 show a face to MediaPipe's face mesh} (needs the
    faces extra, requirements-faces.txt)."""
    detector = FaceMeshDetector(max_faces=1)
    try:
        return {key: sum(len(detector(image)) > 0 for image in images) for key, images in rows.items()}
    finally:
        detector.close()


# Thresholds of toon_features, in luminance units of [0, 1].
OUTLINE_DARKER = 0.15   # a line pixel is this much darker than the pixels 2 px away on both sides
FLAT_RANGE = 0.01       # a flat pixel's 3x3 neighbourhood varies by less than this (uint8 steps: 0.004)


def toon_features(images: np.ndarray) -> Dict[str, float]:
    """Image statistics that tell the toon look from the natural one, means over images (M, R, R, 3) uint8:
    'saturation' (HSV saturation: the pastel palette), 'outline' (fraction of pixels on thin dark
    lines: darker by OUTLINE_DARKER than both pixels 2 px away, horizontally or vertically) and
    'flat' (fraction of pixels in a flat patch: the cel-shading bands and plain background)."""
    rgb = images.astype(np.float64) / 255
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-8), 0.0)
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    centre = lum[:, 2:-2, 2:-2]
    line_x = (lum[:, 2:-2, :-4] - centre > OUTLINE_DARKER) & (lum[:, 2:-2, 4:] - centre > OUTLINE_DARKER)
    line_y = (lum[:, :-4, 2:-2] - centre > OUTLINE_DARKER) & (lum[:, 4:, 2:-2] - centre > OUTLINE_DARKER)
    windows = np.lib.stride_tricks.sliding_window_view(lum, (3, 3), axis=(1, 2))
    flat = windows.max(axis=(-1, -2)) - windows.min(axis=(-1, -2)) < FLAT_RANGE
    return dict(saturation=float(saturation.mean()), outline=float((line_x | line_y).mean()),
                flat=float(flat.mean()))


@torch.no_grad()
def depth_table(G: torch.nn.Module, views: HeadViews, truncation_psi: float = 1.0) -> Dict[str, float]:
    """The model card's depth numbers over all views of all heads in `views`, with G's first stored domain:
    'natural' / 'stylised' depth error (L1 against the ground truth on foreground pixels, world units),
    'stylised_vs_natural' (L1 between the two renders' depths on the same pixels) and 'image_change'
    (mean absolute image difference alpha 0 -> 1, [-1, 1] units)."""
    sums = dict(natural=0.0, stylised=0.0, stylised_vs_natural=0.0, image_change=0.0)
    n_heads = views.z.shape[0]
    for i in range(n_heads):
        c = views.labels[i]
        ws = G.mapping(views.z[i:i + 1].expand(len(c), -1), c, truncation_psi=truncation_psi)
        nat = G.synthesis(ws, c, noise_mode='const')
        sty = G.synthesis(ws, c, noise_mode='const', domain=G.domain_names[0], alpha=1)
        gt = downsample_depth(views.depth[i], nat['image_depth'].shape[-1])
        fg = torch.isfinite(gt)
        d_nat, d_sty = nat['image_depth'][:, 0][fg], sty['image_depth'][:, 0][fg]
        sums['natural'] += (d_nat - gt[fg]).abs().mean().item()
        sums['stylised'] += (d_sty - gt[fg]).abs().mean().item()
        sums['stylised_vs_natural'] += (d_sty - d_nat).abs().mean().item()
        sums['image_change'] += (sty['image'] - nat['image']).abs().mean().item()
    return {k: v / n_heads for k, v in sums.items()}


def synthetic_check_rows(yaws: Sequence[float] = CHECK_YAWS) -> Dict[tuple, np.ndarray]:
    """The face check's rows drawn by the procedural renderer, heads 0-7 of seed 0 (those the demo
    source is fitted to): {(alpha, yaw): (8, 128, 128, 3) uint8}, alpha 0 = natural look, 1 = toon."""
    rows = {}
    for alpha, style in zip(CHECK_ALPHAS, ('natural', 'toon')):
        for yaw in yaws:
            images = []
            for i in CHECK_SEEDS:
                shape, _, _, choice = synthetic_heads.sample_head(0, i)
                image, _ = synthetic_heads.render_head(shape, camera_utils.camera_label(yaw, 0.0)[0].numpy(), 128,
                                                       style, synthetic_heads.pick_colors(style, choice))
                images.append(image)
            rows[(alpha, yaw)] = np.stack(images)
    return rows
