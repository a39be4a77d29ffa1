"""The package layout: dependencies point down, and the layers do not load the exemplar encoder."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('training', 'torch_utils', 'dnnlib', 'dataset_preprocessing', 'metrics', 'projector', 'viewer')
# Top-level library modules (no CLI) packages may import: the camera convention and label checks, the shape
# extraction, and the generator I/O conventions (seed -> z, camera labels, domain arguments, pictures) that the
# scripts and the viewer share so that they render identically.
SHARED_TOP_LEVEL = {'camera_utils', 'shape_utils', 'gen_utils'}


def _imported_modules(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    return names


def test_packages_import_no_top_level_script():
    # A package and its CLI may share a name (projector/ and projector.py): `import projector` finds the package.
    top_level = {p.stem for p in ROOT.glob('*.py')} - SHARED_TOP_LEVEL - set(PACKAGES)
    assert {'train', 'legacy', 'gen_samples', 'visualizer', 'fit_source'} <= top_level
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob('*.py')):
            upward = _imported_modules(path) & top_level
            if upward:
                offenders.append(f'{path.relative_to(ROOT)} imports {sorted(upward)}')
    assert not offenders, offenders


def test_layers_do_not_load_the_encoder():
    code = ('import sys, training.layers, training.networks_stylegan2, training.superresolution; '
            'print(sorted(m for m in sys.modules if m.startswith("training.")))')
    loaded = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    for heavy in ('training.encoders', 'training.ir_se', 'training.pretrained_weights', 'training.domain_adaptation'):
        assert f"'{heavy}'" not in loaded, loaded


def test_legacy_stays_small():
    assert len((ROOT / 'legacy.py').read_text().splitlines()) < 400
