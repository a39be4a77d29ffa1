"""One reader for every image a user gives: exemplars, dataset sources, projection targets, uploads.

`read_image` returns 8-bit RGB whatever the file holds, scaling each format by its real range
instead of PIL's `convert('RGB')`, which clips 16-bit greyscale to white and floats to black:
- 8-bit greyscale / RGB / CMYK / YCbCr, bilevel and palette images: converted to RGB;
- 16-bit greyscale (`I;16*`, or `I` within 0..65535): v / 257, rounded;
- float greyscale (`F`): values must lie in [0, 1]; v * 255, rounded;
- alpha (RGBA, LA, palette transparency): composited over `background`, or refused when
  `background` is None;
- the EXIF orientation tag is applied, as photo viewers do.
Unreadable, truncated or corrupt files raise `ImageReadError` naming the file.
`png_bytes` is the one PNG writer for images sent or stored as bytes.
"""

import io
import os
from typing import BinaryIO, List, Optional, Tuple, Union

import numpy as np
import PIL.Image
import PIL.ImageOps

ImageSource = Union[str, os.PathLike, bytes, BinaryIO]
WHITE = (255, 255, 255)

_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')


def is_image_file(name: str) -> bool:
    """Whether a file name ends in an extension PIL reads: the one list of image extensions."""
    PIL.Image.init()
    return os.path.splitext(name)[1].lower() in PIL.Image.EXTENSION


def list_images(folder: Union[str, os.PathLike], recursive: bool = True) -> List[str]:
    """Sorted paths of the image files in `folder` (and its subfolders when `recursive`), relative to
    it with '/' separators."""
    if recursive:
        names = (os.path.relpath(os.path.join(root, f), folder) for root, _dirs, files in os.walk(folder)
                 for f in files)
    else:
        names = (f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f)))
    return sorted(name.replace(os.sep, '/') for name in names if is_image_file(name))


class ImageReadError(ValueError):
    """An image file that cannot be read, or holds values this reader will not guess about."""


def read_image(source: ImageSource, *, background: Optional[Tuple[int, int, int]] = WHITE,
               name: Optional[str] = None) -> np.ndarray:
    """Read an image as a (H, W, 3) uint8 RGB array.

    source: a path, the file's bytes, or a binary file object.
    background: RGB colour that transparent pixels are composited over; None refuses images
        with any pixel that is not fully opaque.
    name: how the image is called in error messages (default: the path, or "image").
    """
    if name is None:
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else 'image'
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise ImageReadError(f'image "{name}" does not exist or is not a file')
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with PIL.Image.open(source) as image:
            image.load()  # decode now, so a truncated or corrupt file fails here
            image = PIL.ImageOps.exif_transpose(image)
            return _to_rgb(image, background, name)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as err:
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(f'cannot read image "{name}": {err}') from err


def _to_rgb(image: PIL.Image.Image, background: Optional[Tuple[int, int, int]], name: str) -> np.ndarray:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == 'I':
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(f'image "{name}" holds 32-bit integers outside 0..65535; save it as 8- or 16-bit')
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == 'F':
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageReadError(f'float image "{name}" holds NaN or infinite values')
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ImageReadError(f'float image "{name}" has values in [{values.min():g}, {values.max():g}]; '
                                 'expected [0, 1]: rescale it or save it as an 8-bit image')
        grey = np.round(values * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == 'P' and 'transparency' in image.info:
        image, mode = image.convert('RGBA'), 'RGBA'
    if mode not in _ALPHA_MODES:
        return np.asarray(image.convert('RGB'))
    rgba = np.asarray(image.convert('RGBA'))
    alpha = rgba[:, :, 3:].astype(np.float64) / 255
    if (alpha == 1).all():
        return np.ascontiguousarray(rgba[:, :, :3])
    if background is None:
        raise ImageReadError(f'image "{name}" has transparent pixels; remove its alpha channel or composite it '
                             'over a background first')
    composite = rgba[:, :, :3] * alpha + np.asarray(background, dtype=np.float64) * (1 - alpha)
    return np.round(composite).astype(np.uint8)


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    """A (H, W, 3) uint8 image as PNG file bytes; compress_level 0 (none) .. 9, 6 being PIL's default."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format='PNG', compress_level=compress_level)
    return buffer.getvalue()
