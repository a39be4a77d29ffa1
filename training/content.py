"""Content samples for style adaptation: natural-face w+ latents with the camera to render them at.

Two sources (train.py --content):
- `SampledContent`: z ~ N(0, I) through the frozen source mapping network with truncation, the
  camera drawn from the style dataset's labels (as EG3D draws its generator poses);
- `LatentFolderContent`: a folder of projected latents, each `NAME.npy` or `NAME.pt` holding one
  (num_ws, w_dim) or (1, num_ws, w_dim) w+ array, with the cameras in `dataset.json` in EG3D's
  format `{"labels": [["NAME.npy", [25 floats]], ...]}`.

Both draw with an explicit `torch.Generator` so that a resumed run continues the same stream.
"""

import io
import os
import pickle
from typing import Tuple, Union

import numpy as np
import torch

from camera_utils import CAMERA_LABEL_DIM, DATASET_JSON_FORMAT, checked_camera_labels, read_dataset_labels
LATENT_EXTS = ('.npy', '.pt')


class LatentError(ValueError):
    """A latent file that cannot be used; the message is one line saying what is wrong and what to do."""


def read_latent(source: Union[str, bytes], num_ws: int, w_dim: int, name: str = '') -> torch.Tensor:
    """One w+ latent (num_ws, w_dim) float32 from a .npy / .pt file given by path or by its bytes.

    The file holds (num_ws, w_dim) or (1, num_ws, w_dim) finite floating-point numbers (projector.py's
    latent.npy, a latents/ folder entry). `name` labels the bytes in messages and picks the format
    ('.pt': a tensor saved by torch.save, read with weights_only; anything else: .npy, never unpickled);
    for a path it defaults to the path. Raises LatentError.
    """
    name = name or (source if isinstance(source, str) else 'latent.npy')
    if isinstance(source, str) and not os.path.isfile(source):
        raise LatentError(f'latent file "{source}" does not exist; give the path of a .npy / .pt w+ latent')
    stream = source if isinstance(source, str) else io.BytesIO(source)
    try:
        if name.endswith('.pt'):
            ws = torch.load(stream, map_location='cpu', weights_only=True)
            if not isinstance(ws, torch.Tensor):
                raise LatentError(f'"{name}" holds a {type(ws).__name__}, not a single tensor of w+ latents; '
                                  f'save one tensor with torch.save')
            ws = ws.detach().float().numpy() if ws.is_floating_point() else ws.detach().numpy()
        else:
            ws = np.load(stream, allow_pickle=False)
            if not isinstance(ws, np.ndarray):
                raise LatentError(f'"{name}" holds several arrays; use the latent.npy projector.py writes')
    except LatentError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
        kind = 'a PyTorch tensor file' if name.endswith('.pt') else 'a NumPy .npy array'
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LatentError(f'"{name}" is not {kind} ({reason}); use the latent.npy projector.py writes') from err
    if ws.dtype.kind != 'f' or ws.shape not in ((num_ws, w_dim), (1, num_ws, w_dim)):
        raise LatentError(f'"{name}" is not a w+ latent of this network: got {tuple(ws.shape)} {ws.dtype}; use float '
                          f'(1, {num_ws}, {w_dim}) or ({num_ws}, {w_dim}), as projector.py writes for this network')
    if not np.isfinite(ws).all():
        raise LatentError(f'"{name}" holds NaN or infinite numbers; project the photo again')
    return torch.from_numpy(ws.astype(np.float32).reshape(num_ws, w_dim))


class SampledContent:
    """w+ = G_src.mapping(z, c, truncation_psi); c from `camera_labels` (M, 25)."""

    def __init__(self, G_src: torch.nn.Module, camera_labels: np.ndarray, truncation_psi: float = 0.7):
        labels = np.asarray(camera_labels, dtype=np.float32)
        if labels.ndim != 2 or labels.shape[1] != CAMERA_LABEL_DIM or len(labels) == 0:
            raise ValueError(f'sampled content needs camera labels of shape (M, {CAMERA_LABEL_DIM}), '
                             f'got {labels.shape}')
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
            raise FileNotFoundError(f'--content folder "{path}" does not exist '
                                    '(expected a folder of .npy/.pt w+ latents)')
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
        ws = torch.stack([read_latent(os.path.join(path, name), num_ws, w_dim) for name in names])
        self.names, self.ws = names, ws
        self.c = torch.from_numpy(np.stack([cams[name] for name in names]))

    def __len__(self) -> int:
        return len(self.names)

    def __call__(self, n: int, device: torch.device, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, num_ws, w_dim) latents and (N, 25) cameras picked at random (with replacement)."""
        idx = torch.randint(len(self.names), [n], generator=generator)
        return self.ws[idx].to(device), self.c[idx].to(device)
