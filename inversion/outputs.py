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


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, EG3D's rounding."""
    return (image[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(image.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1).unsqueeze(0).to(device)


class VideoRecorder:
    """The optimisation as an mp4: target and current render side by side, one frame per step."""

    def __init__(self, path: str, target: np.ndarray, fps: int = 30):
        self.target = target
        self.writer = imageio.get_writer(path, mode='I', fps=fps, codec='libx264', bitrate='16M',
                                         macro_block_size=2)

    def add(self, image: torch.Tensor) -> None:
        self.writer.append_data(np.concatenate([self.target, to_uint8(image)], axis=1))

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
