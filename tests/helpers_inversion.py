"""The bundled demo network, its cameras and the latents gen_samples.py draws, for the projection tests."""

import os

import torch

import gen_utils
import legacy
from training import inference

DEMO = os.path.join(gen_utils.REPO_ROOT, gen_utils.DEMO_NETWORK)


def load_demo() -> torch.nn.Module:
    return legacy.load_network_pkl(DEMO)['G_ema'].eval().requires_grad_(False)


def camera(G: torch.nn.Module, yaw: float, pitch: float = -0.1) -> torch.Tensor:
    return inference.generator_camera_label(G, yaw, pitch)


def true_latent(G: torch.nn.Module, seed: int) -> torch.Tensor:
    """(1, num_ws, w_dim): what gen_samples.py --seeds=seed draws (truncation 0.7)."""
    z = inference.z_from_seed(seed, G.z_dim, torch.device('cpu'))
    return G.mapping(z, camera(G, 0.0, 0.0), truncation_psi=0.7)
