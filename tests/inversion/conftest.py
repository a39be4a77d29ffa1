"""Shared fixtures of the projection tests."""

import pytest
import torch

from tests.helpers_inversion import load_demo


@pytest.fixture(scope='module')
def demo_G() -> torch.nn.Module:
    return load_demo()
