"""fit_source.py with bad and edge inputs: one-line errors before any fitting, --out never replaces
an existing file without --overwrite and never the --resume pickle."""

import numpy as np
import pytest
from click.testing import CliRunner

import fit_source
from tests.cli_checks import assert_one_line_error, random_args, tree_digest

TINY = ['--heads', '1', '--views', '1', '--resolution', '32', '--batch', '1', '--threads', '1']

pytestmark = pytest.mark.usefixtures('single_cpu_thread')


def _fit(*args):
    return CliRunner().invoke(fit_source.main, TINY + [str(a) for a in args])


@pytest.mark.parametrize('args, pattern', [
    (['--out', '{tmp}/old.pkl', '--iterations', '1'], r'--out .*old.pkl already exists; pass --overwrite'),
    (['--out', '{tmp}/old.pkl', '--resume', '{tmp}/old.pkl', '--iterations', '0', '--overwrite'],
     r'--out .*old.pkl is, holds or lies inside the input .*old.pkl'),
    (['--out', '{tmp}/new.pkl', '--resume', '{tmp}/missing.pkl'], r'network pickle ".*missing.pkl" does not exist'),
    (['--out', '{tmp}/new.pkl', '--resume', '{tmp}/old.pkl'], r'--resume .*old.pkl: .*; give a complete network'),
    (['--out', '{tmp}/dir', '--iterations', '1'], r'--out .*dir is a folder; give a file name'),
    (['--out', '{tmp}/old.pkl/x.pkl', '--iterations', '1'], r'--out: .*old.pkl is a file, not a folder'),
    (['--out', '{tmp}/new.pkl', '--lr', 'nan'], r'--lr.*is not a finite number'),
    (['--out', '', '--iterations', '1'], r'--out.*is empty'),
])
def test_bad_inputs_stop_before_fitting(tmp_path, args, pattern):
    (tmp_path / 'old.pkl').write_bytes(b'not a network')
    (tmp_path / 'dir').mkdir()
    before = tree_digest(tmp_path)
    result = _fit(*[a.replace('{tmp}', str(tmp_path)) for a in args])
    assert_one_line_error(result, pattern)
    assert 'rendered' not in result.output  # stopped before the synthetic views were rendered
    assert tree_digest(tmp_path) == before


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'net.pkl').write_bytes(b'x')
    result = _fit('--out=~/net.pkl', '--iterations', '1')
    assert_one_line_error(result, f'--out {tmp_path}/net.pkl already exists')


def test_random_option_sweep(tmp_path):
    rng = np.random.RandomState(4)
    choices = {'--heads': ['0', 'x', None], '--views': ['0', '-1', None], '--resolution': ['16', 'abc', None],
               '--lr': ['0', 'inf', '-1', None], '--minutes': ['0', 'nan', None], '--snap': ['0', None]}
    for _ in range(8):
        args = ['--out', str(tmp_path / 'out.pkl'), '--iterations', '0'] + random_args(rng, choices)
        assert_one_line_error(_fit(*args), r'.')  # every pick is invalid: no --resume for 0 iterations, or a bad value
    assert not (tmp_path / 'out.pkl').exists()
