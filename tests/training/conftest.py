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


def build_with_state(kwargs: dict, state_file: str) -> torch.nn.Module:
    """A network built from EG3D kwargs with a fixture state dict, frozen and in eval mode."""
    net = dnnlib.util.construct_class_by_name(**kwargs).eval().requires_grad_(False)
    net.load_state_dict(load_state(FIXTURES / state_file), strict=True)
    return net


@pytest.fixture(scope='session')
def tiny_config() -> dict:
    return json.loads((FIXTURES / 'tiny_config.json').read_text())


@pytest.fixture(scope='session')
def tiny_io():
    return dict(np.load(FIXTURES / 'tiny_io.npz', allow_pickle=False))


@pytest.fixture(scope='session')
def tiny_G(tiny_config):
    """The tiny TriPlaneGenerator with EG3D's perturbed weights, in eval mode."""
    return build_with_state(tiny_config['G_kwargs'], 'tiny_G_state.npz')


@pytest.fixture(scope='session')
def tiny_planes(tiny_G, tiny_io):
    """Backbone output (2, 96, 256, 256) for ws_psi07 with constant noise (computed once, ~4 s)."""
    with torch.no_grad():
        return tiny_G.backbone.synthesis(torch.from_numpy(tiny_io['ws_psi07']), noise_mode='const')


@pytest.fixture(scope='session')
def tiny_D(tiny_config):
    return build_with_state(tiny_config['D_kwargs'], 'tiny_D_state.npz')


@pytest.fixture(scope='session')
def ffhq512():
    return json.loads((FIXTURES / 'ffhq512_shapes.json').read_text())
