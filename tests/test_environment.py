"""environment/pstyle3d.yaml (the GPU conda environment) holds every requirement of requirements.txt."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# requirements.txt name -> the conda-forge package that provides it in the GPU environment.
CONDA_NAMES = {'torch': 'pytorch-gpu'}


def _normalise(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _requirement_names(path: Path) -> set:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            names.add(_normalise(re.split(r'[<>=!~\[; ]', line, maxsplit=1)[0]))
    return names


def _environment_names(path: Path) -> set:
    """Package names of the conda `dependencies` list and its nested `pip` list."""
    names = set()
    for line in path.read_text().splitlines():
        match = re.match(r'^\s+-\s+([A-Za-z0-9_.\-]+)\s*(?:[<>=].*)?$', line)
        if match:
            names.add(_normalise(match.group(1)))
    return names


def test_parsers_read_versions_and_comments(tmp_path):
    (tmp_path / 'r.txt').write_text('# comment\ntorch==2.13.0\nPyMCubes>=0.1  # meshes\nnumpy<2\n\n')
    assert _requirement_names(tmp_path / 'r.txt') == {'torch', 'pymcubes', 'numpy'}
    (tmp_path / 'e.yaml').write_text('name: x\ndependencies:\n  - python=3.11\n  - pip:\n      - mrcfile\n')
    assert _environment_names(tmp_path / 'e.yaml') == {'python', 'mrcfile'}


def test_conda_environment_has_every_requirement():
    required = {CONDA_NAMES.get(name, name) for name in _requirement_names(ROOT / 'requirements.txt')}
    missing = sorted(required - _environment_names(ROOT / 'environment' / 'pstyle3d.yaml'))
    assert not missing, f'environment/pstyle3d.yaml lacks {missing} (requirements.txt has them)'
