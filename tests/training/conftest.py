"""Shared fixtures: EG3D's tiny reference networks (tests/fixtures/eg3d) loaded into this project's classes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dnnlib

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'eg3d'


def load_state(path: Path) -> dict:
    return {k: torch.from_numpy(v) for k, v in np.load(path, allow_pickle=False).items()}


@pytest.fixture(scope='session')
def tiny_config() -> dict:
    return json.loads((FIXTURES / 'tiny_config.json').read_text())


@pytest.fixture(scope='session')
def tiny_io():
    return dict(np.load(FIXTURES / 'tiny_io.npz', allow_pickle=False))


@pytest.fixture(scope='session')
def tiny_G(tiny_config):
    """The tiny TriPlaneGenerator with EG3D's perturbed weights, in eval mode."""
    G = dnnlib.util.construct_class_by_name(**tiny_config['G_kwargs']).eval().requires_grad_(False)
    G.load_state_dict(load_state(FIXTURES / 'tiny_G_state.npz'), strict=True)
    return G


@pytest.fixture(scope='session')
def tiny_planes(tiny_G, tiny_io):
    """Backbone output (2, 96, 256, 256) for ws_psi07 with constant noise (computed once, ~4 s)."""
    with torch.no_grad():
        return tiny_G.backbone.synthesis(torch.from_numpy(tiny_io['ws_psi07']), noise_mode='const')


@pytest.fixture(scope='session')
def tiny_D(tiny_config):
    D = dnnlib.util.construct_class_by_name(**tiny_config['D_kwargs']).eval().requires_grad_(False)
    D.load_state_dict(load_state(FIXTURES / 'tiny_D_state.npz'), strict=True)
    return D


@pytest.fixture(scope='session')
def ffhq512():
    return json.loads((FIXTURES / 'ffhq512_shapes.json').read_text())
