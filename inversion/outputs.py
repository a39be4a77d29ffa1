"""What projector.py writes: per-target folders written whole or not at all, the optimisation video,
the stylised grid and the w+ latent folder that `train.py --content` reads.
"""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Dict, Iterator, List

import imageio
import numpy as np
import torch

from training import inference

LATENTS_DIR = 'latents'


@contextlib.contextmanager
def staged_directory(path: str) -> Iterator[str]:
    """Yield a temporary folder next to `path`; on success it replaces `path`, on failure it is removed."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=parent)
    try:
        yield staging
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class VideoRecorder:
    """The optimisation as an mp4: target and current render side by side, one frame per step."""

    def __init__(self, path: str, target: np.ndarray, fps: int = 30):
        self.target = target
        self.writer = imageio.get_writer(path, mode='I', fps=fps, codec='libx264', bitrate='16M',
                                         macro_block_size=2)

    def add(self, image: torch.Tensor) -> None:
        """One frame: the target beside `image` (1, 3, H, W) in [-1, 1]."""
        self.writer.append_data(np.concatenate([self.target, inference.image_to_uint8(image)[0]], axis=1))

    def close(self) -> None:
        self.writer.close()


def write_json(data: Dict, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2)
        f.write('\n')


def write_latent_folder(path: str, latents: Dict[str, np.ndarray], cameras: Dict[str, np.ndarray]) -> List[str]:
    """`train.py --content` format: NAME.npy, each (1, num_ws, w_dim) float32, and dataset.json
    {"labels": [["NAME.npy", [25 floats]], ...]}. Returns the file names written."""
    names = []
    labels = []
    for stem in sorted(latents):
        name = f'{stem}.npy'
        np.save(os.path.join(path, name), latents[stem].astype(np.float32))
        labels.append([name, [float(v) for v in cameras[stem]]])
        names.append(name)
    write_json({'labels': labels}, os.path.join(path, 'dataset.json'))
    return names
