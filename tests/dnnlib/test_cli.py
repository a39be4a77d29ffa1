"""dnnlib.cli: finite floats, ~ expansion, output checks, and the one-line error of `run`."""

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from dnnlib import cli, util


@click.command()
@click.option('--x', type=cli.FiniteFloat(min=0))
@click.option('--y', type=cli.FiniteFloat())
@click.option('--path', callback=cli.expand_path)
def _echo(x, y, path):
    click.echo(f'{x} {path}')


@pytest.mark.parametrize('value', ['nan', 'inf', 'NaN'])
def test_finite_float_refuses_nan_and_inf(value):
    for option in ('--x', '--y'):
        result = CliRunner().invoke(_echo, [option, value])
        assert result.exit_code == 2 and 'is not a finite number' in result.output, result.output


def test_finite_float_keeps_bounds_and_values():
    assert 'is not a finite number' in CliRunner().invoke(_echo, ['--y', '-inf']).output
    assert CliRunner().invoke(_echo, ['--x', '-1']).exit_code == 2
    assert CliRunner().invoke(_echo, ['--x', '0.25']).output == '0.25 None\n'


def test_expand_path_expands_home_but_not_urls(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    assert CliRunner().invoke(_echo, ['--path=~/runs']).output == f'None {tmp_path}/runs\n'
    assert CliRunner().invoke(_echo, ['--path=https://host/~x']).output == 'None https://host/~x\n'
    assert 'is empty' in CliRunner().invoke(_echo, ['--path=']).output


def test_check_not_a_source(tmp_path):
    source = tmp_path / 'd' / 'raw'
    source.mkdir(parents=True)
    for dest in (source, source / 'x.zip', tmp_path / 'd', tmp_path):
        with pytest.raises(click.ClickException, match='is, holds or lies inside the input'):
            cli.check_not_a_source(str(dest), '--dest', [str(source)])
    cli.check_not_a_source(str(tmp_path / 'other.zip'), '--dest', [str(source), None, 'https://x/y'])
    with pytest.raises(click.ClickException, match='holds this repository'):
        cli.check_not_a_source(os.path.dirname(cli.REPO_ROOT), '--dest', [])


def test_check_outputs_names_collisions_and_existing_files(tmp_path):
    (tmp_path / 'a.png').write_bytes(b'')
    with pytest.raises(click.ClickException, match='both be named'):
        cli.check_outputs([str(tmp_path / 'b.png')] * 2, overwrite=True)
    with pytest.raises(click.ClickException, match='a.png already exist'):
        cli.check_outputs([str(tmp_path / 'a.png'), str(tmp_path / 'b.png')], overwrite=False)
    cli.check_outputs([str(tmp_path / 'a.png'), str(tmp_path / 'b.png')], overwrite=True)
    with pytest.raises(click.ClickException, match='a.png would replace an input of this run'):
        cli.check_outputs([str(tmp_path / 'a.png')], overwrite=True, sources=[str(tmp_path / 'a.png'), None])


def test_check_writable_folder_refuses_a_file(tmp_path):
    (tmp_path / 'f').write_text('x')
    with pytest.raises(click.ClickException, match='is a file, not a folder'):
        cli.check_writable_folder(str(tmp_path / 'f' / 'sub'), '--outdir')


def test_network_error_names_the_cache_entry_of_a_url():
    err = cli.network_error('--network', 'https://host/ffhq512-128.pkl', ValueError('truncated'))
    assert util.url_cache_path('https://host/ffhq512-128.pkl') in err.message and 'delete' in err.message


def test_run_turns_os_errors_into_one_line(tmp_path):
    script = ('import click\nfrom dnnlib import cli\n@click.command()\ndef main():\n'
              f'    open({str(tmp_path / "no" / "such")!r})\ncli.run(main)\n')
    env = dict(os.environ, PYTHONPATH=cli.REPO_ROOT)
    env.pop(cli.TRACEBACK_ENV, None)
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith('Error: No such file or directory: ') and result.stderr.count('\n') == 1
    env[cli.TRACEBACK_ENV] = '1'
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env)
    assert 'Traceback' in result.stderr


def test_check_writable_folder_accepts_new_relative_folders(tmp_path, monkeypatch):
    """Regression: a relative folder that does not exist yet ('out', as in the README) looped forever."""
    monkeypatch.chdir(tmp_path)
    cli.check_writable_folder('out', '--outdir')
    cli.check_writable_folder(os.path.join('out', 'deeper'), '--outdir')
    cli.prepare_outdir('out')
    assert (tmp_path / 'out').is_dir()
    (tmp_path / 'plain').write_text('')
    with pytest.raises(click.ClickException, match='is a file'):
        cli.check_writable_folder(os.path.join('plain', 'sub'), '--outdir')
