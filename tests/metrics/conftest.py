"""Shared fixtures of the metric tests: random-weight detectors saved as weight files, tiny image sets."""

import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from dataset_preprocessing.synthetic_heads import make_synthetic_pair
from metrics.inception import InceptionV3


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


def read_pngs(folder: str) -> np.ndarray:
    """(N, 3, H, W) uint8 of the PNGs of a folder, in sorted order (an independent reader for references)."""
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    return np.stack([np.asarray(PIL.Image.open(os.path.join(folder, n)).convert('RGB')).transpose(2, 0, 1)
                     for n in names])
