"""Command-line plumbing shared by every CLI: checked option types, paths, outputs, one-line errors.

The rules it implements (docs/safety.md): every input is checked before heavy work; a bad input
stops the command with one line `Error: <what is wrong>; <what to do>` and a non-zero exit; paths
expand `~`; an existing output is replaced only with `--overwrite`, and never when it is (or holds)
something the command reads or the repository itself.
"""

import math
import os
import pickle
import signal
import sys
from typing import Any, Callable, Iterable, Optional

import click

from dnnlib import util

# Set to 1 to see the Python traceback behind a one-line error.
TRACEBACK_ENV = 'PSTYLE3D_TRACEBACK'
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Errors that a bad input file or path causes inside a loader (as opposed to a bug in this code).
INPUT_ERRORS = (OSError, EOFError, ValueError, pickle.UnpicklingError)


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and +-inf (click's FloatRange lets nan through any bound)."""
    name = 'finite float'

    def convert(self, value: Any, param, ctx) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f'{value!r} is not a finite number', param, ctx)
        return number


def expand_path(_ctx, _param, value: Optional[str]) -> Optional[str]:
    """click callback: `~` expanded (the shell does not expand it in `--opt=~/x`); URLs unchanged."""
    if value is None or util.is_url(value):
        return value
    if value.strip() == '':
        raise click.BadParameter('is empty; give a path')
    return os.path.expanduser(value)


def is_within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies inside it (after resolving symlinks)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_not_a_source(path: str, option: str, sources: Iterable[Optional[str]]) -> None:
    """Refuse an output that is, contains or lies inside one of `sources`, or contains the repository."""
    for source in sources:
        if source is None or util.is_url(source):
            continue
        if is_within(path, source) or is_within(source, path):
            raise click.ClickException(f'{option} {path} is, holds or lies inside the input {source}; '
                                       f'write the output somewhere else')
    if is_within(REPO_ROOT, path):
        raise click.ClickException(f'{option} {path} holds this repository; write the output somewhere else')


def check_new_output(path: str, option: str, overwrite: bool) -> None:
    """An output file `path` may be written: its folder is usable and it is new (or --overwrite)."""
    if os.path.isdir(path):
        raise click.ClickException(f'{option} {path} is a folder; give a file name')
    if os.path.lexists(path) and not overwrite:
        raise click.ClickException(f'{option} {path} already exists; pass --overwrite to replace it')
    check_writable_folder(os.path.dirname(os.path.abspath(path)), option)


def check_writable_folder(folder: str, option: str) -> None:
    """`folder` exists as a writable folder, or can be created (its nearest existing parent is one)."""
    existing = os.path.abspath(folder)  # a relative name has no parent to climb to ('out' -> '')
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise click.ClickException(f'{option}: {existing} is a file, not a folder; choose another path')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise click.ClickException(f'{option}: {existing} is not writable; choose a folder you can write to')


def prepare_outdir(outdir: str, option: str = '--outdir') -> None:
    """Create the output folder `outdir` after checking it (not a file, writable)."""
    check_writable_folder(outdir, option)
    os.makedirs(outdir, exist_ok=True)


def check_outputs(paths: Iterable[str], overwrite: bool, sources: Iterable[Optional[str]] = (),
                  option: str = '--outdir') -> None:
    """The files one run will write: distinct names, none of the run's inputs (`sources`), and none
    exists unless --overwrite."""
    paths = list(paths)
    inputs = {os.path.realpath(s) for s in sources if s is not None and not util.is_url(s)}
    for path in paths:
        if os.path.realpath(path) in inputs:
            raise click.ClickException(f'{option}: the output {path} would replace an input of this run; '
                                       f'choose another {option}')
    seen = set()
    for path in paths:
        if path in seen:
            raise click.ClickException(f'two outputs of this run would both be named {path}; '
                                       f'give distinct values (seeds, alphas, views)')
        seen.add(path)
    existing = [p for p in paths if os.path.lexists(p)]
    if existing and not overwrite:
        more = f' and {len(existing) - 1} more' if len(existing) > 1 else ''
        raise click.ClickException(f'{option}: {existing[0]}{more} already exist(s); pass --overwrite to replace '
                                   f'them, or choose another {option}')


def network_error(option: str, source: str, err: BaseException) -> click.ClickException:
    """One-line error for a network pickle that cannot be loaded; for a URL, names its cache entry."""
    hint = cache_hint(source) or 'give a complete network pickle written by train.py, fit_source.py or EG3D'
    return click.ClickException(f'{option} {source}: {err}; {hint}')


def cache_hint(source: str) -> Optional[str]:
    """For a downloaded file that does not load: which cache entry to delete; None for local files."""
    if not util.is_url(source) or source.startswith('file://'):
        return None
    return f'if the cached download is damaged, delete {util.url_cache_path(source)} and retry'


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (`kill`, a job scheduler's stop) raise KeyboardInterrupt in the main thread, as Ctrl+C does.

    Python's default for SIGTERM ends the process at once, leaving the temporary files and folders
    of unfinished outputs behind; as an exception it runs `finally` blocks and context managers
    (dnnlib.util.atomic_output and the like remove their temporary output) before the command exits.
    """
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def _raise_keyboard_interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f'stopped by {signal.Signals(signum).name}')


def run(command: Callable[..., Any]) -> None:
    """Run a click command; an OSError (disk full, permission denied, ...) becomes one `Error:` line.

    SIGTERM stops it like Ctrl+C (see `interrupt_on_sigterm`). Set PSTYLE3D_TRACEBACK=1 to get the
    traceback instead of the one line.
    """
    interrupt_on_sigterm()
    try:
        command()  # pylint: disable=no-value-for-parameter
    except OSError as err:
        if os.environ.get(TRACEBACK_ENV) == '1':
            raise
        where = f': {err.filename}' if err.filename else ''
        print(f'Error: {err.strerror or err}{where}; check the path, its permissions and the free disk space '
              f'(set {TRACEBACK_ENV}=1 for details)', file=sys.stderr)
        sys.exit(1)
