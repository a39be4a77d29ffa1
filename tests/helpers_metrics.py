"""An image reader for the metric tests' references, independent of the code under test."""

import os

import numpy as np
import PIL.Image


def read_pngs(folder: str) -> np.ndarray:
    """(N, 3, H, W) uint8 of the PNGs of a folder, in sorted order (an independent reader for references)."""
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    return np.stack([np.asarray(PIL.Image.open(os.path.join(folder, n)).convert('RGB')).transpose(2, 0, 1)
                     for n in names])
