"""The demo network's natural source: fit a small DAM-enabled tri-plane generator to rendered views
of known synthetic heads (no GAN). fit_source.py is its command line.

GAN training of a source generator from scratch is far too slow on a CPU, so the demo network's
natural source is fitted by multi-view reconstruction instead (GLO-style: each head has a fixed
latent, the networks learn to render it); its style is then trained by train.py:
- head i's latent is z_i = the latent that `gen_samples.py --seeds=i` draws, so seeds 0..N-1 show
  the fitted heads;
- source (alpha = 0, no domain input): L1 of `image` and `image_raw` against the head's NATURAL
  renders from its known cameras, plus L1 of `image_depth` against the ground-truth depth on
  foreground pixels (it keeps the geometry a head, not a picture painted on a wall);
- optional supervised style (stored domain code, alpha = 1): the same losses against the paired
  TOON renders of the same heads and cameras, through the DAM parameters and the stored code only,
  so alpha = 0 stays exactly the natural source (a paired baseline; the method never has pairs).
At the end `w_avg` is set to the mean w of the fitted heads, so truncation pulls towards them.

Usage:
    views = render_views(count=32, views_per_head=4, resolution=64, seed=0)
    G = build_demo_generator()
    log = fit(G, views, iterations=200, batch_size=4)
"""

import copy
import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import configs
import dnnlib
import camera_utils
from camera_utils import CAMERA_LABEL_DIM
from dataset_preprocessing import head_sdf, synthetic_heads
from training import inference
from training.trainable import dam_parameter_names

DEMO_PRESET = configs.load_network_preset('demo_synthetic')
DEMO_DOMAIN = DEMO_PRESET.G_kwargs['domain_kwargs']['domain_names'][0]
DEPTH_WEIGHT = 1.0
# Eyes and lips: 1-3 % of the pixels of a 128 px view, too few for the image L1 to shape them.
DETAIL_MATERIALS = (head_sdf.EYE_WHITE, head_sdf.IRIS, head_sdf.PUPIL, head_sdf.LIPS)


def build_demo_generator(img_resolution: int = 128, domain_name: str = DEMO_DOMAIN,
                         depth_samples: int = 12) -> torch.nn.Module:
    """The demo generator (configs/networks/demo_synthetic.json) at `img_resolution`, with
    `depth_samples` + `depth_samples` samples per ray and one stored domain code `domain_name`.

    Neural rendering runs at img_resolution/4 (the preset's 32 at 128); the super-resolution resizes
    the render to img_resolution/2, keeps that resolution in its first block and doubles it in the
    second.
    """
    if img_resolution % 4 or img_resolution < 32:
        raise ValueError(f'img_resolution must be a multiple of 4, >= 32, got {img_resolution}')
    G_kwargs = dnnlib.EasyDict(copy.deepcopy(DEMO_PRESET.G_kwargs))
    G_kwargs.img_resolution = img_resolution
    G_kwargs.sr_kwargs['input_resolution'] = img_resolution // 2
    G_kwargs.rendering_kwargs.update(image_resolution=img_resolution, depth_resolution=depth_samples,
                                     depth_resolution_importance=depth_samples)
    G_kwargs.domain_kwargs['domain_names'] = [domain_name]
    G = dnnlib.util.construct_class_by_name(**G_kwargs)
    G.neural_rendering_resolution = img_resolution // 4
    return G


@dataclasses.dataclass
class HeadViews:
    """Paired renders of `count` heads, V views each (same cameras in both looks).

    z: (N, 512) latents (those of seeds 0..N-1); labels: (N, V, 25) cameras; natural / toon:
    (N, V, 3, R, R) in [-1, 1]; depth: (N, V, R, R) ray distance, inf on the background;
    detail: (N, V, R, R) bool, the pixels of the eyes and lips (DETAIL_MATERIALS).
    """
    z: torch.Tensor
    labels: torch.Tensor
    natural: torch.Tensor
    toon: torch.Tensor
    depth: torch.Tensor
    detail: torch.Tensor


def seed_latent(seed: int, z_dim: int = 512) -> torch.Tensor:
    """(z_dim,) the latent gen_samples.py draws for `seed`."""
    return inference.z_from_seed(seed, z_dim, torch.device('cpu'))[0]


def render_views(count: int, views_per_head: int, resolution: int, seed: int = 0) -> HeadViews:
    """Render heads 0..count-1 of `synthetic_heads` (shape and palette of `sample_head(seed, i)`) in both
    looks from `views_per_head` cameras: the head's own dataset camera, then random yaw/pitch within
    the dataset's range."""
    if count < 1 or views_per_head < 1:
        raise ValueError(f'need count >= 1 and views_per_head >= 1, got {count}, {views_per_head}')
    rng = np.random.default_rng([seed, 12345])
    labels, natural, toon, depth, detail = [], [], [], [], []
    for i in range(count):
        shape, yaw, pitch, choice = synthetic_heads.sample_head(seed, i)
        poses = [(yaw, pitch)] + [tuple(rng.uniform([-synthetic_heads.MAX_YAW, -synthetic_heads.MAX_PITCH],
                                                    [synthetic_heads.MAX_YAW, synthetic_heads.MAX_PITCH]))
                                  for _ in range(views_per_head - 1)]
        for v_yaw, v_pitch in poses:
            label = camera_utils.camera_label(float(v_yaw), float(v_pitch))[0].numpy()
            traced = synthetic_heads.trace_head(shape, label, resolution)
            for style, out in (('natural', natural), ('toon', toon)):
                out.append(synthetic_heads.shade_head(traced, style, synthetic_heads.pick_colors(style, choice)))
            labels.append(label)
            depth.append(traced.depth.astype(np.float32))
            detail.append(np.isin(traced.material, DETAIL_MATERIALS))

    def to_images(images: List[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        return x.reshape(count, views_per_head, 3, resolution, resolution)

    def to_maps(maps: List[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(maps)).reshape(count, views_per_head, resolution, resolution)

    return HeadViews(z=torch.stack([seed_latent(i) for i in range(count)]),
                     labels=torch.from_numpy(np.stack(labels)).reshape(count, views_per_head, CAMERA_LABEL_DIM),
                     natural=to_images(natural), toon=to_images(toon), depth=to_maps(depth), detail=to_maps(detail))


def downsample_depth(depth: torch.Tensor, size: int) -> torch.Tensor:
    """(N, R, R) depth with inf background -> (N, size, size) block means; a block that touches the
    background is inf (so it is not supervised)."""
    d = torch.nn.functional.adaptive_avg_pool2d(depth.unsqueeze(1), size)  # inf propagates through the mean
    return d.squeeze(1)


def image_gradients(images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Horizontal (N, C, H, W-1) and vertical (N, C, H-1, W) neighbour differences of images (N, C, H, W)."""
    return images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :]


def reconstruction_loss(out: Dict[str, torch.Tensor], target: torch.Tensor, depth: torch.Tensor,
                        edge_weight: float = 0.0, detail: Optional[torch.Tensor] = None,
                        detail_weight: float = 0.0, depth_weight: float = DEPTH_WEIGHT) -> Dict[str, torch.Tensor]:
    """L1 losses of a render `out` against target images (N, 3, R, R) and depth (N, R, R).

    Returns {'image', 'image_raw', 'depth', 'edge', 'detail', 'total'}; 'depth' is over foreground
    pixels of the neural render's resolution, weighted by `depth_weight` in 'total'; 'edge' is the L1
    of the neighbour differences of `image` (eyes, lips and outlines are small in area but carry most
    of them), weighted by `edge_weight` in 'total'; 'detail' is the L1 of `image` over the pixels of
    the mask `detail` (N, R, R) (HeadViews.detail: eyes and lips), weighted by `detail_weight`.
    """
    size = out['image_raw'].shape[-1]
    l_image = (out['image'] - target).abs().mean()
    l_raw = (out['image_raw'] - torch.nn.functional.adaptive_avg_pool2d(target, size)).abs().mean()
    gt = downsample_depth(depth, size)
    fg = torch.isfinite(gt)
    pred = out['image_depth'][:, 0]
    l_depth = (pred[fg] - gt[fg]).abs().mean() if fg.any() else pred.sum() * 0
    l_edge = sum((a - b).abs().mean() for a, b in zip(image_gradients(out['image']), image_gradients(target)))
    if detail is not None and detail.any():
        l_detail = (out['image'] - target).abs().mean(dim=1)[detail].mean()
    else:
        l_detail = l_image * 0
    return dict(image=l_image, image_raw=l_raw, depth=l_depth, edge=l_edge, detail=l_detail,
                total=l_image + l_raw + depth_weight * l_depth + edge_weight * l_edge + detail_weight * l_detail)


def split_parameters(G: torch.nn.Module) -> Dict[str, List[torch.nn.Parameter]]:
    """{'source': EG3D's parameters, 'dam': the domain path}; the stored code is a buffer, handled by fit."""
    groups: Dict[str, List[torch.nn.Parameter]] = {'source': [], 'dam': []}
    dam = dam_parameter_names(G)
    for name, p in G.named_parameters():
        groups['dam' if name in dam else 'source'].append(p)
    return groups


@torch.no_grad()
def update_w_avg(G: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Set the mapping's w_avg (w_dim,) to the mean w of latents z (N, z_dim); returns it."""
    c = torch.zeros(z.shape[0], G.c_dim)
    w = G.mapping(z, c, truncation_psi=1)[:, 0]
    G.backbone.mapping.w_avg.copy_(w.mean(dim=0))
    return G.backbone.mapping.w_avg


def fit(G: torch.nn.Module, views: HeadViews, iterations: int, batch_size: int = 4, lr: float = 2e-3,
        style_from: int = 0, seed: int = 0, log_every: int = 10, max_seconds: Optional[float] = None,
        callback: Optional[Callable[[Dict[str, float]], None]] = None,
        truncation_psi: float = 1.0, edge_weight: float = 0.0, detail_weight: float = 0.0,
        depth_weight: float = DEPTH_WEIGHT) -> List[Dict[str, float]]:
    """Fit G in place to `views` for `iterations` steps of `batch_size` random (head, view) pairs.

    Source losses train EG3D's parameters; from iteration `style_from` on, the style losses train
    the DAM and the stored code of G's first domain. Adam for both. Every `log_every` iterations
    (and at the end) the code and `w_avg` are stored in G and `callback(row)` is called with the
    mean losses since the last row: {'iter', 'seconds', 'natural', 'toon', 'depth'} (image L1 in
    [-1, 1] units, depth L1; toon is nan before `style_from`). Stops early after `max_seconds`.
    With `truncation_psi` < 1 the heads are fitted at that truncation towards the mean w of all heads
    (recomputed every step), so that gen_samples.py's default truncation draws the fitted heads.
    `edge_weight`, `detail_weight` and `depth_weight` weight the image-gradient L1, the eyes-and-lips L1
    and the depth L1 of both losses (see reconstruction_loss).
    Returns the rows.
    """
    if iterations < 1 or batch_size < 1 or log_every < 1:
        raise ValueError(f'need iterations, batch_size, log_every >= 1, got {iterations}, {batch_size}, {log_every}')
    groups = split_parameters(G)
    gen = torch.Generator().manual_seed(seed)
    code = G.domain_codes[0].clone()
    if not code.any():
        # A zero code with the zero-initialised affine1 weights is a saddle: neither gets a gradient.
        code = torch.randn(code.shape, generator=gen)
    code = torch.nn.Parameter(code)
    dam_params = groups['dam'] + [code]
    opt_src = torch.optim.Adam(groups['source'], lr=lr, betas=(0.9, 0.99))
    opt_dam = torch.optim.Adam(dam_params, lr=lr, betas=(0.9, 0.99))
    n_heads, n_views = views.labels.shape[:2]
    G.train().requires_grad_(True)
    start = time.time()
    rows, pending = [], []
    for it in range(iterations):
        head = torch.randint(n_heads, (batch_size,), generator=gen)
        view = torch.randint(n_views, (batch_size,), generator=gen)
        c = views.labels[head, view]
        ws = head_ws(G, views.z, head, c, truncation_psi)
        opt_src.zero_grad(set_to_none=True)
        detail = views.detail[head, view]
        nat = reconstruction_loss(G.synthesis(ws, c), views.natural[head, view], views.depth[head, view], edge_weight,
                                  detail, detail_weight, depth_weight)
        nat['total'].backward()
        opt_src.step()
        toon_l1 = float('nan')
        if it >= style_from:
            # Gradients to the DAM and the code only: alpha = 0 must stay the natural fit.
            out = G.synthesis(ws.detach(), c, domain=code.unsqueeze(0).expand(batch_size, -1, -1), alpha=1)
            toon = reconstruction_loss(out, views.toon[head, view], views.depth[head, view], edge_weight, detail,
                                       detail_weight, depth_weight)
            for p, g in zip(dam_params, torch.autograd.grad(toon['total'], dam_params)):
                p.grad = g
            opt_dam.step()
            toon_l1 = toon['image'].item()
        pending.append((nat['image'].item(), toon_l1, nat['depth'].item()))
        out_of_time = max_seconds is not None and time.time() - start > max_seconds
        if (it + 1) % log_every == 0 or it + 1 == iterations or out_of_time:
            natural, toon_l1s, depth = np.array(pending).T
            toon_l1s = toon_l1s[np.isfinite(toon_l1s)]  # nan before style_from
            rows.append(dict(iter=it + 1, seconds=time.time() - start, natural=float(natural.mean()),
                             toon=float(toon_l1s.mean()) if len(toon_l1s) else float('nan'),
                             depth=float(depth.mean())))
            pending = []
            store_fit(G, code.detach(), views.z)
            if callback is not None:
                callback(rows[-1])
        if out_of_time:
            break
    G.eval().requires_grad_(False)
    return rows


def head_ws(G: torch.nn.Module, z: torch.Tensor, heads: torch.Tensor, c: torch.Tensor,
            truncation_psi: float = 1.0) -> torch.Tensor:
    """(B, num_ws, w_dim) ws of latents z[heads] (z: (N, z_dim) of all heads, c: (B, 25)), truncated by
    `truncation_psi` towards the mean w of all N heads (stored as the mapping's w_avg)."""
    if truncation_psi != 1:
        update_w_avg(G, z)
    return G.mapping(z[heads], c, truncation_psi=truncation_psi)


@torch.no_grad()
def store_fit(G: torch.nn.Module, code: torch.Tensor, z: torch.Tensor) -> None:
    """Store the fitted domain code (num_ws, w_dim) as G's first domain and set w_avg from the heads' latents."""
    G.set_domain_code(G.domain_names[0], code)
    update_w_avg(G, z)


def mean_losses(G: torch.nn.Module, views: HeadViews, heads: Sequence[int], with_style: bool = True,
                truncation_psi: float = 1.0) -> Dict[str, float]:
    """Mean L1 over all views of `heads`: 'natural' / 'toon' images of G's renders at alpha 0 / at
    alpha 1 with its first stored domain (only if `with_style`), 'depth' of the natural render
    (foreground); latents truncated by `truncation_psi` towards G's w_avg."""
    sums = {'natural': 0.0, 'depth': 0.0, **({'toon': 0.0} if with_style else {})}
    with torch.no_grad():
        for i in heads:
            c = views.labels[i]
            ws = G.mapping(views.z[i:i + 1].expand(len(c), -1), c, truncation_psi=truncation_psi)
            nat = reconstruction_loss(G.synthesis(ws, c), views.natural[i], views.depth[i])
            sums['natural'] += nat['image'].item()
            sums['depth'] += nat['depth'].item()
            if with_style:
                out = G.synthesis(ws, c, domain=G.domain_names[0], alpha=1)
                sums['toon'] += reconstruction_loss(out, views.toon[i], views.depth[i])['image'].item()
    return {k: v / len(heads) for k, v in sums.items()}
