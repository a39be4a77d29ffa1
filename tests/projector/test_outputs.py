"""Output folders: never overwritten without --overwrite, never over an input, written whole or not at all."""

import os

import pytest

from projector import outputs


def test_check_destination(tmp_path):
    dest = tmp_path / 'out' / 'me'
    outputs.check_destination(str(dest), overwrite=False, sources=[str(tmp_path / 'me.jpg')])
    os.makedirs(dest)
    with pytest.raises(FileExistsError, match='already exists; pass --overwrite'):
        outputs.check_destination(str(dest), overwrite=False, sources=[])
    outputs.check_destination(str(dest), overwrite=True, sources=[str(tmp_path / 'me.jpg')])
    with pytest.raises(FileExistsError, match='would hold or replace the input'):
        outputs.check_destination(str(dest), overwrite=True, sources=[str(dest / 'me.jpg')])


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
