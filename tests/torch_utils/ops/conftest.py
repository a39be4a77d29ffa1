"""Fixtures of the op tests: EG3D's op outputs and the devices to run on (parity.py has the comparison)."""

from typing import Dict

import pytest
import torch

from tests.eg3d_fixtures import load_state

# The CPU always; CUDA where this machine has a GPU (bench/gpu_check.sh runs these tests there).
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.fixture(scope='session')
def eg3d_ops() -> Dict[str, torch.Tensor]:
    """tests/fixtures/eg3d/ops.npz: NVlabs/eg3d's outputs of the ops on fixed inputs (its README lists them)."""
    return load_state('ops.npz')


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
