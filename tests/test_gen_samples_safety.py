"""gen_samples.py with bad and edge inputs: one-line errors before any network work, distinct and
atomic outputs, nothing outside the run's own outputs changed."""

import os

import click
import numpy as np
import PIL.Image
import pytest
import torch

import gen_samples
import gen_utils
import legacy
from tests import cli_checks
from tests.cli_checks import (GENERATION_OPTION_CASES, assert_one_line_error, check_bad_generation_options,
                               tree_digest)


network = pytest.fixture(scope='module', name='network')(cli_checks.tiny_network)
_run = cli_checks.cpu_runner(gen_samples.generate_images)


@pytest.mark.parametrize('content, pattern', [
    (b'\x80\x04garbage', r'--network .*bad.pkl: .*; give a complete network pickle'),
    ('half', r'--network .*bad.pkl: .*not a complete network pickle'),
    (b'', r'--network .*bad.pkl: '),
])
def test_corrupt_or_truncated_network_is_one_line(tmp_path, network, content, pattern):
    data = open(network, 'rb').read()
    (tmp_path / 'bad.pkl').write_bytes(data[:len(data) // 2] if content == 'half' else content)
    before = tree_digest(tmp_path)
    assert_one_line_error(_run(f'--network={tmp_path / "bad.pkl"}', f'--outdir={tmp_path / "out"}'), pattern)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize('args, pattern', GENERATION_OPTION_CASES + [
    (['--views=nan:0'], r"--views.*is not a pair of finite numbers"),
    (['--shape-level=nan'], r"--shape-level.*is not a finite number"),
])
def test_bad_options_stop_before_the_network_is_loaded(tmp_path, network, args, pattern, monkeypatch):
    loaded = []
    real_load = legacy.load_generator
    monkeypatch.setattr(legacy, 'load_generator',
                        lambda path, device, *args: loaded.append(path) or real_load(path, device, *args))
    check_bad_generation_options(_run, tmp_path, network, args, pattern)
    # The checks come first: the good network is never read (a bad --network is, and fails).
    assert not any(os.path.realpath(path) == os.path.realpath(network) for path in loaded), loaded


def test_unwritable_outdir(tmp_path, network, monkeypatch):
    """A folder the user may not write to is one error line. Permission bits do not stop root (CI runs as
    root), so the permission check itself is made to deny the folder, for every user alike."""
    (tmp_path / 'ro').mkdir(mode=0o555)
    real_access = os.access

    def access(path, mode, **kwargs):
        if os.path.abspath(path) == str(tmp_path / 'ro') and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)
    monkeypatch.setattr(os, 'access', access)
    assert_one_line_error(_run(f'--network={network}', f'--outdir={tmp_path / "ro" / "out"}'), r'ro is not writable')
    assert not (tmp_path / 'ro' / 'out').exists()


def test_existing_outputs_need_overwrite(tmp_path, network):
    args = [f'--network={network}', f'--outdir={tmp_path}', '--seeds=0', '--views=front', '--domain=toon', '--alpha=1']
    assert _run(*args).exit_code == 0
    (tmp_path / 'mine.txt').write_text('mine')
    before = tree_digest(tmp_path)
    assert_one_line_error(_run(*args), r'seed0000_toon_alpha1.00_yaw\+0.00_pitch\+0.00.png and 1 more already '
                                       r'exist\(s\); pass --overwrite')
    assert tree_digest(tmp_path) == before
    result = _run(*args, '--overwrite')
    assert result.exit_code == 0, result.output
    assert tree_digest(tmp_path) == before  # same request, same bytes; mine.txt untouched


def test_distinct_requests_give_distinct_files(tmp_path, network):
    result = _run(f'--network={network}', f'--outdir={tmp_path}', '--seeds=0', '--domain=toon',
                  '--alpha=0.001,0.004', '--views=0.001:0,0.004:0')
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f'seed0000_toon_alpha{a}_yaw+{y}_pitch+0.00.png' for a in ('0.001', '0.004') for y in ('0.001', '0.004')]
        + ['seed0000_toon_grid.png'])
    # An exemplar's name is part of the names, so two exemplars do not overwrite each other.
    for name in ('warm', 'cold'):
        PIL.Image.fromarray(np.full((16, 16, 3), 200 if name == 'warm' else 30, np.uint8)).save(
            tmp_path / f'{name}.png')
        result = _run(f'--network={network}', f'--outdir={tmp_path / "ex"}', '--seeds=0', '--views=front',
                      f'--exemplar={tmp_path / f"{name}.png"}', '--alpha=1')
        assert result.exit_code == 0, result.output
    assert {'seed0000_warm_grid.png', 'seed0000_cold_grid.png'} <= set(os.listdir(tmp_path / 'ex'))


def test_shape_level_without_surface_writes_no_shape_files(tmp_path, network):
    pytest.importorskip('mcubes')
    result = _run(f'--network={network}', f'--outdir={tmp_path}', '--seeds=0', '--views=front', '--domain=toon',
                  '--alpha=1', '--shapes', '--shape-res=8', '--shape-level=1e9')
    assert_one_line_error(result, r'--shape-level: iso-level 1000000000.0 is outside the density range .*; '
                                  r'choose a level inside that range')
    assert not [n for n in os.listdir(tmp_path) if n.endswith(('.mrc', '.ply')) or n.startswith('.')]


def test_home_is_expanded_in_outdir(tmp_path, network, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = _run(f'--network={network}', '--outdir=~/samples', '--seeds=0', '--views=front')
    assert result.exit_code == 0, result.output
    assert not os.path.exists(tmp_path / '~') and os.path.isdir(tmp_path / 'samples')


def test_random_option_sweep(tmp_path, network):
    """Random option values: each run either writes its files or stops with one Error line."""
    rng = np.random.RandomState(1)
    choices = {'--seeds': ['0', '1,1', '2-1', '-3', 'x', '4294967295'], '--alpha': ['1', '0,0.5', 'nan', '', None],
               '--views': ['front', '0:0,0:0', '0.1:nan', '1', None], '--trunc': ['0.5', 'inf', '-1', None],
               '--trunc-cutoff': ['0', '-2', None], '--fov-deg': ['0', '18', '200', None],
               '--ray-chunk': ['1', '0', '64', None], '--domain': ['toon', 'oil', None]}
    (tmp_path / 'keep.txt').write_text('mine')
    for trial in range(10):
        outdir = tmp_path / f'out{trial}'
        args = [f'--network={network}', f'--outdir={outdir}'] + cli_checks.random_args(rng, choices)
        if cli_checks.assert_done_or_one_error(_run(*args), args):
            assert any(n.endswith('_grid.png') for n in os.listdir(outdir)), args
        else:
            assert not os.path.exists(outdir), args
    assert (tmp_path / 'keep.txt').read_text() == 'mine'


def test_exemplar_files_are_read_by_the_image_reader(tmp_path):
    PIL.Image.fromarray(np.full((4, 4), 257 * 255, dtype=np.uint16)).save(tmp_path / 'white16.png')
    assert torch.equal(gen_utils.load_exemplar(str(tmp_path / 'white16.png'), torch.device('cpu')),
                       torch.ones(1, 3, 4, 4))  # PIL's convert('RGB') gave a wrong grey here
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\ncut')
    with pytest.raises(click.BadParameter, match='cannot read image ".*broken.png"'):
        gen_utils.load_exemplar(str(tmp_path / 'broken.png'), torch.device('cpu'))
