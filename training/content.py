"""Content samples for style adaptation: natural-face w+ latents with the camera to render them at.

Two sources (train.py --content):
- `SampledContent`: z ~ N(0, I) through the frozen source mapping network with truncation, the
  camera drawn from the style dataset's labels (as EG3D draws its generator poses);
- `LatentFolderContent`: a folder of projected latents, each `NAME.npy` or `NAME.pt` holding one
  (num_ws, w_dim) or (1, num_ws, w_dim) w+ array, with the cameras in `dataset.json` in EG3D's
  format `{"labels": [["NAME.npy", [25 floats]], ...]}`.

Both draw with an explicit `torch.Generator` so that a resumed run continues the same stream.
"""

import os
from typing import Tuple

import numpy as np
import torch

from camera_utils import CAMERA_LABEL_DIM, DATASET_JSON_FORMAT, checked_camera_labels, read_dataset_labels
LATENT_EXTS = ('.npy', '.pt')


def load_latent_file(path: str, num_ws: int, w_dim: int) -> torch.Tensor:
    """One w+ latent (num_ws, w_dim) from NAME.npy or NAME.pt holding (num_ws, w_dim) or (1, num_ws, w_dim)."""
    if path.endswith('.npy'):
        ws = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        ws = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(ws, torch.Tensor):
            raise ValueError(f'{path} must hold a single tensor of w+ latents, got {type(ws).__name__}')
    ws = ws.to(torch.float32)
    if ws.ndim == 3 and ws.shape[0] == 1:
        ws = ws[0]
    if tuple(ws.shape) != (num_ws, w_dim):
        raise ValueError(f'{path}: w+ latent must be ({num_ws}, {w_dim}) or (1, {num_ws}, {w_dim}) '
                         f'for this generator, got {tuple(ws.shape)}')
    return ws


class SampledContent:
    """w+ = G_src.mapping(z, c, truncation_psi); c from `camera_labels` (M, 25)."""

    def __init__(self, G_src: torch.nn.Module, camera_labels: np.ndarray, truncation_psi: float = 0.7):
        labels = np.asarray(camera_labels, dtype=np.float32)
        if labels.ndim != 2 or labels.shape[1] != CAMERA_LABEL_DIM or len(labels) == 0:
            raise ValueError(f'sampled content needs camera labels of shape (M, {CAMERA_LABEL_DIM}), got {labels.shape}')
        self.G_src = G_src
        self.camera_labels = torch.from_numpy(labels)
        self.truncation_psi = truncation_psi

    def __call__(self, n: int, device: torch.device, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, num_ws, w_dim) latents and (N, 25) cameras, drawn from `generator` (on the CPU)."""
        z = torch.randn([n, self.G_src.z_dim], generator=generator).to(device)
        idx = torch.randint(len(self.camera_labels), [n], generator=generator)
        c = self.camera_labels[idx].to(device)
        with torch.no_grad():
            ws = self.G_src.mapping(z, c, truncation_psi=self.truncation_psi)
        return ws, c


class LatentFolderContent:
    """Projected w+ latents and their cameras from a folder (see the module docstring)."""

    def __init__(self, path: str, num_ws: int, w_dim: int):
        if not os.path.isdir(path):
            raise FileNotFoundError(f'--content folder "{path}" does not exist (expected a folder of .npy/.pt w+ latents)')
        names = sorted(f for f in os.listdir(path) if f.endswith(LATENT_EXTS))
        if not names:
            raise ValueError(f'--content folder "{path}" holds no {"/".join(LATENT_EXTS)} latent files')
        labels_path = os.path.join(path, 'dataset.json')
        if not os.path.isfile(labels_path):
            raise FileNotFoundError(f'--content folder "{path}" has no dataset.json with camera labels: '
                                    f'expected {DATASET_JSON_FORMAT}, image paths being the latent file names')
        with open(labels_path, 'rb') as f:
            labels = read_dataset_labels(f, labels_path) or {}
        missing = [name for name in names if name not in labels]
        if missing:
            raise ValueError(f'{labels_path} has no camera label for {len(missing)} latent(s), e.g. "{missing[0]}"')
        cams = checked_camera_labels({name: labels[name] for name in names}, labels_path)
        ws = torch.stack([load_latent_file(os.path.join(path, name), num_ws, w_dim) for name in names])
        self.names, self.ws = names, ws
        self.c = torch.from_numpy(np.stack([cams[name] for name in names]))

    def __len__(self) -> int:
        return len(self.names)

    def __call__(self, n: int, device: torch.device, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, num_ws, w_dim) latents and (N, 25) cameras picked at random (with replacement)."""
        idx = torch.randint(len(self.names), [n], generator=generator)
        return self.ws[idx].to(device), self.c[idx].to(device)
