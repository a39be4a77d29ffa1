"""The package layout: dependencies point one way, with no cycles, and the layers do not load the encoder."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: a module may import its own package and anything in a lower layer, nothing else.
LAYERS = (
    {'dnnlib'},
    {'torch_utils'},
    {'camera_utils', 'shape_utils'},       # the camera convention and mesh extraction: top-level libraries
    {'configs', 'dataset_preprocessing'},
    {'training'},
    {'metrics', 'inversion', 'viewer'},     # consumers of the networks, independent of each other
    {'legacy'},                             # EG3D's network-pickle entry point, shared by the scripts
    {'gen_utils'},                          # the command-line options the generator scripts share
)
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}
SCRIPT_LAYER = len(LAYERS)
NOT_PRODUCT = {'tests', 'bench'}  # product code never imports these
MAX_PRODUCT_LINES = 400


def _project_imports(path: Path) -> set:
    """Top-level names of the project modules that `path` imports (anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    scripts = {p.stem for p in ROOT.glob('*.py')}
    return {name for name in names if name in LAYER_OF or name in scripts or name in NOT_PRODUCT}


def _home(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _product_files(suffixes=('.py',)) -> list:
    return sorted(p for p in ROOT.rglob('*') if p.suffix in suffixes and p.is_file()
                  and p.relative_to(ROOT).parts[0] not in ('tests', 'bench')
                  and not any(part.startswith('.') for part in p.relative_to(ROOT).parts))


def test_dependencies_point_down():
    offenders = []
    for path in _product_files():
        home = _home(path)
        rank = LAYER_OF.get(home, SCRIPT_LAYER)
        for name in _project_imports(path) - {home}:
            if name in NOT_PRODUCT or LAYER_OF.get(name, SCRIPT_LAYER) >= rank:
                offenders.append(f'{path.relative_to(ROOT)} imports {name}')
    assert not offenders, offenders


def test_every_package_has_a_layer():
    packages = {p.parent.name for p in ROOT.glob('*/__init__.py')} - NOT_PRODUCT
    assert packages <= set(LAYER_OF), sorted(packages - set(LAYER_OF))


def test_no_package_shares_a_name_with_a_script():
    packages = {p.parent.name for p in ROOT.glob('*/__init__.py')}
    scripts = {p.stem for p in ROOT.glob('*.py')}
    assert not packages & scripts


def test_product_files_stay_small():
    long = [f'{p.relative_to(ROOT)}: {n} lines' for p in _product_files(('.py', '.cpp', '.cu', '.h'))
            if (n := len(p.read_text().splitlines())) > MAX_PRODUCT_LINES]
    assert not long, long


def test_layers_do_not_load_the_encoder():
    code = ('import sys, training.layers, training.networks_stylegan2, training.superresolution; '
            'print(sorted(m for m in sys.modules if m.startswith("training.")))')
    loaded = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    for heavy in ('training.encoders', 'training.ir_se', 'training.pretrained_weights', 'training.domain_adaptation'):
        assert f"'{heavy}'" not in loaded, loaded
