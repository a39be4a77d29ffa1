"""Files a viewer user hands in (exemplar images, latent.npy files), checked before anything changes.

Each reader returns a `Named` tensor or raises `UploadError` with one line saying what is wrong
and what to do; the viewer shows that line and keeps its current state.
"""

import hashlib
import io
import os

import PIL.Image
import torch

from dnnlib.image_io import ImageReadError, read_image
from training import inference
from training.content import LatentError, read_latent as content_latent
from viewer.render_core import Named

MAX_UPLOAD_BYTES = 32 * 2 ** 20
MAX_EXEMPLAR_PIXELS = 4096 * 4096  # the encoder resizes to its own resolution; larger files only cost memory


class UploadError(ValueError):
    """A file the viewer refuses; the message is meant for the user."""


def _check_size(name: str, content: bytes) -> None:
    if not content:
        raise UploadError(f'"{name}" is empty; choose another file')
    if len(content) > MAX_UPLOAD_BYTES:
        raise UploadError(f'"{name}" is {len(content) / 2 ** 20:.1f} MiB, over the {MAX_UPLOAD_BYTES // 2 ** 20} MiB '
                          f'limit; upload a smaller file')


def _digest(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()[:16]


def read_exemplar(name: str, content: bytes, device: torch.device) -> Named:
    """An uploaded exemplar image as (1, 3, H, W) in [-1, 1]."""
    _check_size(name, content)
    try:
        with PIL.Image.open(io.BytesIO(content)) as image:  # reads the header only
            width, height = image.size
    except (OSError, PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError) as err:
        raise UploadError(f'"{name}" is not an image PIL can read ({err}); upload a PNG or JPEG') from err
    if width * height > MAX_EXEMPLAR_PIXELS:
        raise UploadError(f'"{name}" is {width}x{height} pixels, over the limit of {MAX_EXEMPLAR_PIXELS} pixels; '
                          f'resize it (the encoder works at a few hundred pixels)')
    try:
        rgb = read_image(content, name=name)
    except ImageReadError as err:
        raise UploadError(f'{err}; upload a PNG or JPEG') from err
    return Named(name, _digest(content), inference.image_to_tensor(rgb, device))


def read_latent(name: str, content: bytes, num_ws: int, w_dim: int) -> Named:
    """An uploaded latent.npy as a (1, num_ws, w_dim) float32 tensor (training.content.read_latent's checks)."""
    _check_size(name, content)
    try:
        ws = content_latent(content, num_ws, w_dim, name=name)
    except LatentError as err:
        raise UploadError(str(err)) from err
    return Named(name, _digest(content), ws.unsqueeze(0))


def read_latent_file(path: str, num_ws: int, w_dim: int) -> Named:
    """A latent.npy on the server's disk (see `read_latent`)."""
    path = os.path.expanduser(path.strip())
    if not os.path.isfile(path):
        raise UploadError(f'latent file "{path}" does not exist on the server; give the path of a latent.npy')
    if os.path.getsize(path) > MAX_UPLOAD_BYTES:
        raise UploadError(f'"{path}" is over the {MAX_UPLOAD_BYTES // 2 ** 20} MiB limit; it is not a latent.npy')
    with open(path, 'rb') as f:
        return read_latent(os.path.basename(path), f.read(), num_ws, w_dim)
