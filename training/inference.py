"""Using a trained generator: latents from seeds, cameras, seeded rendering, pictures.

The library API that the generation scripts, the viewer, the projector and the metrics share, so that
they all render a head the same way. Nothing here parses options or prints; the command-line layer
is `gen_utils.py`.
"""

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

import camera_utils


def z_from_seed(seed: int, z_dim: int, device: torch.device) -> torch.Tensor:
    """The latent (1, z_dim) that EG3D's scripts draw for `seed`."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float().to(device)


def camera_pivot(G: torch.nn.Module) -> List[float]:
    """The point G's cameras look at: its `avg_camera_pivot`, or the origin as in EG3D's scripts."""
    return list(G.rendering_kwargs.get('avg_camera_pivot', [0, 0, 0]))


def generator_camera_label(G: torch.nn.Module, yaw: float, pitch: float, fov_deg: float = camera_utils.FOV_DEG,
                           device: torch.device = torch.device('cpu')) -> torch.Tensor:
    """`camera_utils.camera_label` (1, 25) from G's average camera radius, looking at `camera_pivot(G)`."""
    radius = G.rendering_kwargs.get('avg_camera_radius', camera_utils.CAMERA_RADIUS)
    return camera_utils.camera_label(yaw, pitch, fov_deg, radius=radius, pivot=camera_pivot(G), device=device)


def domain_kwargs(domain: Any, alpha: float) -> Dict[str, Any]:
    """Keyword arguments that select a domain in G / G.synthesis; none at all for plain EG3D output."""
    return {} if domain is None else dict(domain=domain, alpha=alpha)


def image_to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> a (1, 3, H, W) float tensor in [-1, 1], the generator's range (an exemplar for
    the encoder, a projection target): the inverse of `image_to_uint8`."""
    array = image.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1
    return torch.from_numpy(array).unsqueeze(0).to(device)


@contextlib.contextmanager
def seeded_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Run the body with torch's global RNG seeded by `seed` (the renderer's depth jitter and importance
    sampling, the synthesis noise inputs draw from it), then restore the caller's RNG state, CPU and
    `device`'s."""
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed)
        yield


def seeded_synthesis(G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, seed: int, **synthesis_kwargs) -> dict:
    """`G.synthesis(ws, c, noise_mode='const', ...)` under `seeded_rng(seed)`, so the picture is reproducible."""
    with seeded_rng(c.device, seed):
        return G.synthesis(ws, c, noise_mode='const', **synthesis_kwargs)


@torch.no_grad()
def render_views(G: torch.nn.Module, ws: torch.Tensor, planes: torch.Tensor, cameras: Sequence[torch.Tensor],
                 render_seed: int, domain_kwargs: dict,
                 neural_rendering_resolution: Optional[int] = None) -> List[dict]:
    """G.synthesis outputs for one latent `ws` (1, num_ws, w_dim) and its tri-planes (1, 3, 32, H, W)
    (`G.synthesize_planes` with the same `domain_kwargs`) seen from each (1, 25) camera, each view
    rendered with `seeded_synthesis`, at the generator's neural rendering resolution unless one is
    given (G.synthesis then keeps that one as the generator's, as in EG3D)."""
    return [seeded_synthesis(G, ws, c, render_seed, planes=planes,
                             neural_rendering_resolution=neural_rendering_resolution, **domain_kwargs)
            for c in cameras]


def uint8_tensor(image: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) generator output in [-1, 1] -> (N, C, H, W) uint8 on its device, EG3D's rounding."""
    return (image * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) generator output in [-1, 1] -> (N, H, W, C) uint8 pictures (NumPy), EG3D's rounding."""
    return uint8_tensor(image).permute(0, 2, 3, 1).cpu().numpy()


def depth_to_unit(depth: torch.Tensor, rendering_kwargs: Dict[str, Any]) -> torch.Tensor:
    """(N, 1, H, W) ray depths -> [0, 1], 1 = nearest: a fixed map from [ray_start, ray_end].

    A fixed range (not per image min/max) keeps depth comparable across views and video frames.
    The rendered depth is a weighted mean of sample depths, so it lies inside the range.
    """
    near, far = rendering_kwargs['ray_start'], rendering_kwargs['ray_end']
    if not all(isinstance(v, (int, float)) for v in (near, far)):
        raise ValueError(f'depth maps need numeric ray_start/ray_end, got {near!r}/{far!r}')
    return ((far - depth) / (far - near)).clamp(0, 1)
