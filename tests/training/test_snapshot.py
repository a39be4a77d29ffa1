"""Snapshot names, contents and RNG capture of training/snapshot.py."""

import os

import pytest
import torch

from training import snapshot


def test_snapshot_path_uses_kimg():
    assert snapshot.snapshot_path('/r', 12345).endswith(os.path.join('r', 'network-snapshot-000012.pkl'))


def test_rng_state_roundtrip():
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(3)
    state = snapshot.capture_rng_state(torch.device('cpu'), {'loop': gen})
    first = (torch.rand(3), torch.rand(3, generator=gen))
    snapshot.restore_rng_state(state, torch.device('cpu'), {'loop': gen})
    second = (torch.rand(3), torch.rand(3, generator=gen))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    with pytest.raises(ValueError, match='no RNG state for "other"'):
        snapshot.restore_rng_state(state, torch.device('cpu'), {'other': gen})


def test_optimizer_state_copy_is_detached_from_live_state():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    saved = snapshot.optimizer_state_to_cpu(opt)
    p.grad = torch.ones(3)
    opt.step()
    assert float(saved['state'][0]['step']) == 1.0
    assert float(opt.state_dict()['state'][0]['step']) == 2.0
