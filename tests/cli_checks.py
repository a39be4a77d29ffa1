"""Checks shared by the CLI safety tests: one-line errors, and inputs left byte-identical."""

import hashlib
import os
import re
from typing import Dict

from click.testing import CliRunner

from tests.gen_network import write_tiny_snapshot


def tree_digest(*roots) -> Dict[str, str]:
    """sha256 of every file under `roots` (files or folders), by path; folders are listed too."""
    digest = {}
    for root in map(str, roots):
        if os.path.isfile(root):
            digest[root] = hashlib.sha256(open(root, 'rb').read()).hexdigest()
            continue
        for folder, dirs, files in os.walk(root):
            digest[folder] = 'folder'
            for name in files:
                path = os.path.join(folder, name)
                digest[path] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    return digest


def assert_one_line_error(result, pattern: str) -> str:
    """The command stopped with a non-zero exit and `Error: ...` on one line matching `pattern`, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f'unhandled {result.exception!r}\n{result.output}'
    assert 'Traceback' not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith('Error:')]
    assert len(lines) == 1, result.output
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# Bad values of the options gen_samples.py and gen_videos.py share (gen_utils.generation_options);
# '{tmp}' stands for the test's folder, which holds a file 'file.txt'.
GENERATION_OPTION_CASES = [
    (['--trunc=nan'], r'--trunc.*is not a finite number'),
    (['--fov-deg=nan'], r'--fov-deg.*is not a finite number'),
    (['--alpha=0,inf'], r'--alpha.*is not a finite number'),
    (['--seeds=0-1000000000'], r'--seeds.*is 1000000001 seeds; give at most'),
    (['--seeds=0-4294967296'], r'--seeds.*seeds must be below 2\*\*32'),
    (['--outdir='], r'--outdir.*is empty'),
    (['--domain=toon', '--exemplar=x.png'], r'give either --domain or --exemplar, not both'),
    (['--exemplar={tmp}/missing.png'], r'exemplar image ".*missing.png" does not exist'),
    (['--outdir={tmp}/file.txt'], r'--outdir: .*file.txt is a file, not a folder'),
    (['--outdir={tmp}/file.txt/sub'], r'--outdir: .*file.txt is a file, not a folder'),
    (['--network={tmp}/missing.pkl'], r'network pickle ".*missing.pkl" does not exist'),
    (['--network={tmp}/file.txt'], r'--network .*file.txt: .*; give a complete network pickle'),
]


def check_bad_generation_options(run, tmp_path, network: str, args: list, pattern: str) -> None:
    """`run(*args)` of a generation CLI stops with one Error line and changes no file in `tmp_path`."""
    (tmp_path / 'file.txt').write_text('mine')
    before = tree_digest(tmp_path)
    args = [a.replace('{tmp}', str(tmp_path)) for a in args]
    assert_one_line_error(run(f'--network={network}', f'--outdir={tmp_path / "out"}', *args), pattern)
    assert tree_digest(tmp_path) == before


def tiny_network(tmp_path_factory) -> str:
    """Body of a module fixture: a tiny network pickle storing the domain 'toon'; returns its path."""
    path = str(tmp_path_factory.mktemp('net') / 'tiny.pkl')
    write_tiny_snapshot(path, domain_names=['toon'])
    return path


def cpu_runner(command):
    """run(*args): invoke a generation CLI on the CPU with `args` (converted to str)."""
    return lambda *args: CliRunner().invoke(command, ['--device=cpu', *[str(a) for a in args]])


def random_args(rng, choices: dict) -> list:
    """One random pick per option of `choices` ({option: values}): None omits it, True is a flag."""
    args = []
    for option, values in choices.items():
        value = values[rng.randint(len(values))]
        args += [] if value is None else [option] if value is True else [option, str(value)]
    return args


def assert_done_or_one_error(result, args: list) -> bool:
    """The run either succeeded (returns True) or stopped with an Error line and no traceback."""
    assert isinstance(result.exception, SystemExit) or result.exception is None, (args, result.output)
    assert result.exit_code == 0 or ('Error: ' in result.output and 'Traceback' not in result.output), \
        (args, result.output)
    return result.exit_code == 0
