"""Output folders are written whole or not at all (the overwrite and input checks are dnnlib.cli's)."""

import os

import pytest

from inversion import outputs


def test_staged_directory_replaces_on_success_and_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / 'me'
    os.makedirs(dest)
    (dest / 'old.txt').write_text('old')
    with outputs.staged_directory(str(dest)) as stage:
        assert not os.path.samefile(stage, dest)
        (open(os.path.join(stage, 'new.txt'), 'w')).close()
    assert os.listdir(dest) == ['new.txt']
    with pytest.raises(RuntimeError):
        with outputs.staged_directory(str(dest)) as stage:
            (open(os.path.join(stage, 'half.txt'), 'w')).close()
            raise RuntimeError('interrupted')
    assert os.listdir(dest) == ['new.txt'] and os.listdir(tmp_path) == ['me']
