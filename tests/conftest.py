"""Fixtures shared by all tests: EG3D's tiny reference networks (tests/fixtures/eg3d) loaded into
this project's classes, a one-thread mode for the training tests, and the metric tests' inputs."""

import json
import zipfile

import numpy as np
import pytest
import torch

from dataset_preprocessing.synthetic_heads import make_synthetic_pair
from metrics.inception import InceptionV3
from tests.eg3d_fixtures import FIXTURES, build_with_state, load_tiny_config


@pytest.fixture(scope='session')
def tiny_config() -> dict:
    return load_tiny_config()


@pytest.fixture(scope='session')
def tiny_io():
    return dict(np.load(FIXTURES / 'tiny_io.npz', allow_pickle=False))


@pytest.fixture(scope='session')
def tiny_G(tiny_config):
    """The tiny TriPlaneGenerator with EG3D's perturbed weights, in eval mode."""
    return build_with_state(tiny_config['G_kwargs'], 'tiny_G_state.npz')


@pytest.fixture(scope='session')
def tiny_planes(tiny_G, tiny_io):
    """Backbone output (2, 96, 256, 256) for ws_psi07 with constant noise (computed once, ~4 s)."""
    with torch.no_grad():
        return tiny_G.backbone.synthesis(torch.from_numpy(tiny_io['ws_psi07']), noise_mode='const')


@pytest.fixture(scope='session')
def tiny_D(tiny_config):
    return build_with_state(tiny_config['D_kwargs'], 'tiny_D_state.npz')


@pytest.fixture(scope='session')
def ffhq512():
    return json.loads((FIXTURES / 'ffhq512_shapes.json').read_text())


@pytest.fixture(scope='module')
def single_cpu_thread():
    """Run a test module's training on one CPU thread: on a shared 2-core machine two OpenMP threads
    competing with other processes spin-wait, and iterations get 10-30x slower (measured).
    Training test modules use it with `pytestmark = pytest.mark.usefixtures('single_cpu_thread')`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The metric tests' inputs (also used by calc_metrics.py's tests): random-weight detectors saved as
# weight files, tiny image sets.

@pytest.fixture(scope='session')
def inception_file(tmp_path_factory) -> str:
    """A random-weight Inception-v3 state dict saved like the published file (He-initialised, seed 0)."""
    path = tmp_path_factory.mktemp('weights') / 'pt_inception-random.pth'
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(InceptionV3(allow_random_weights=True).state_dict(), path)
    return str(path)


@pytest.fixture(scope='session')
def heads(tmp_path_factory) -> dict:
    """Synthetic heads, 4 of each look at 32 x 32: {'natural': zip, 'toon': zip, 'toon_dir': folder of PNGs}."""
    root = tmp_path_factory.mktemp('heads')
    pair = make_synthetic_pair(str(root), count=4, resolution=32)
    folder = root / 'toon-images'
    folder.mkdir()
    with zipfile.ZipFile(pair['toon']) as zf:
        for name in zf.namelist():
            if name.endswith('.png'):
                (folder / name).write_bytes(zf.read(name))
    return dict(pair, toon_dir=str(folder))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> str:
    """A fresh cache root for the dataset statistics."""
    path = str(tmp_path / 'cache')
    monkeypatch.setenv('PSTYLE3D_CACHE_DIR', path)
    return path
