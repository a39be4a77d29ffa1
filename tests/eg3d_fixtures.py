"""EG3D's reference data in tests/fixtures/eg3d (see its README): one loader for the tiny
configuration, the fixture weights and the networks built from them."""

import json
from pathlib import Path
from typing import Dict

import numpy as np
import torch

import dnnlib

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'eg3d'


def load_tiny_config() -> dict:
    """tiny_config.json: EG3D's tiny G_kwargs / D_kwargs and its neural rendering resolution."""
    return json.loads((FIXTURES / 'tiny_config.json').read_text())


def load_state(file_name: str) -> Dict[str, torch.Tensor]:
    """A fixture state dict (e.g. 'tiny_G_state.npz') as tensors."""
    with np.load(FIXTURES / file_name, allow_pickle=False) as state:
        return {k: torch.from_numpy(state[k]) for k in state.files}


def build_with_state(kwargs: dict, state_file: str, strict: bool = True) -> torch.nn.Module:
    """A network built from EG3D kwargs with a fixture state dict, frozen and in eval mode."""
    net = dnnlib.util.construct_class_by_name(**kwargs).eval().requires_grad_(False)
    net.load_state_dict(load_state(state_file), strict=strict)
    return net
