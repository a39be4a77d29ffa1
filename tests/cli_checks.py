"""Checks shared by the CLI safety tests: one-line errors, and inputs left byte-identical."""

import hashlib
import os
import re
from typing import Dict


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
