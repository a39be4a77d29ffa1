"""Atomic snapshot writing and RNG capture of training/snapshot.py."""

import os
import pickle

import pytest
import torch

from training import snapshot


class _Boom(RuntimeError):
    pass


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'network-snapshot-000004.pkl')
    snapshot.atomic_write_pickle({'step': 1, 'w': torch.arange(4)}, path)

    class DyingPickle:
        @staticmethod
        def dump(obj, f):
            f.write(pickle.dumps(obj)[:10])  # a few bytes reach the disk, then the process "dies"
            raise _Boom('killed mid-write')

    monkeypatch.setattr(snapshot, 'pickle', DyingPickle)
    with pytest.raises(_Boom):
        snapshot.atomic_write_pickle({'step': 2, 'w': torch.arange(8)}, path)
    with pytest.raises(_Boom):
        snapshot.atomic_write_pickle({'step': 2}, str(tmp_path / 'network-snapshot-000008.pkl'))
    # The old snapshot is intact, the new one never appeared, no temporary file is left.
    assert sorted(os.listdir(tmp_path)) == ['network-snapshot-000004.pkl']
    with open(path, 'rb') as f:
        data = pickle.load(f)
    assert data['step'] == 1 and torch.equal(data['w'], torch.arange(4))


def test_snapshot_path_uses_kimg():
    assert snapshot.snapshot_path('/r', 12000).endswith(os.path.join('r', 'network-snapshot-000012.pkl'))
    # Between whole kimg the images are kept, so ticks shorter than 1 kimg do not collide.
    assert snapshot.snapshot_path('/r', 12345).endswith(os.path.join('r', 'network-snapshot-000012.345.pkl'))
    assert snapshot.kimg_tag(200) == '000000.200' and snapshot.kimg_tag(400) == '000000.400'


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
