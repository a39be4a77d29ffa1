"""torch_utils/safe_pickle.py: atomic pickle writing (the restricted reader is tested in tests/test_legacy.py)."""

import os
import pickle

import pytest
import torch

from torch_utils import safe_pickle


class _Boom(RuntimeError):
    pass


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'network-snapshot-000004.pkl')
    safe_pickle.atomic_write_pickle({'step': 1, 'w': torch.arange(4)}, path)

    class DyingPickle:
        @staticmethod
        def dump(obj, f):
            f.write(pickle.dumps(obj)[:10])  # a few bytes reach the disk, then the process "dies"
            raise _Boom('killed mid-write')

    monkeypatch.setattr(safe_pickle, 'pickle', DyingPickle)
    with pytest.raises(_Boom):
        safe_pickle.atomic_write_pickle({'step': 2, 'w': torch.arange(8)}, path)
    with pytest.raises(_Boom):
        safe_pickle.atomic_write_pickle({'step': 2}, str(tmp_path / 'network-snapshot-000008.pkl'))
    # The old snapshot is intact, the new one never appeared, no temporary file is left.
    assert sorted(os.listdir(tmp_path)) == ['network-snapshot-000004.pkl']
    with open(path, 'rb') as f:
        data = pickle.load(f)
    assert data['step'] == 1 and torch.equal(data['w'], torch.arange(4))
