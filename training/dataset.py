"""Images and camera labels streamed from EG3D-format datasets (a folder or a zip).

Format (EG3D's, written by `dataset_tool.py`): image files (PNG, JPEG, ...) anywhere in the folder
or zip, all square and of one size, plus an optional `dataset.json` at the root:
`{"labels": [["img00000000.png", [25 floats]], ...]}`, keys being paths relative to the root with
forward slashes. A camera label is the flattened 4x4 cam2world (OpenCV axes) followed by the
flattened 3x3 intrinsics normalised by the image size (see `camera_utils.py`). Integer labels
(class indices, StyleGAN's convention) are accepted too and become one-hot vectors.
"""

import os
import zipfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import PIL.Image
import torch

import dnnlib
from camera_utils import CAMERA_LABEL_DIM, checked_camera_labels, read_dataset_labels, xflip_camera_label
from dnnlib import image_io


class ImageFolderDataset(torch.utils.data.Dataset):
    """EG3D-format dataset in a folder or a zip: index mapping for `max_size` and `xflip`, labels, shape
    properties; every image header is checked when it opens."""

    def __init__(self,
                 path: str,                          # Path to a folder or a .zip.
                 resolution: Optional[int] = None,   # Required image size; None = whatever the images are.
                 *,
                 max_size: Optional[int] = None,     # Keep at most this many images (random subset). Before xflip.
                 use_labels: bool = False,           # False = label dimension is zero.
                 xflip: bool = False,                # Double the size with mirrored copies. After max_size.
                 random_seed: int = 0,               # Seed of the max_size subset.
                 ):
        self._path = path
        self._zipfile: Optional[zipfile.ZipFile] = None

        if os.path.isdir(self._path):
            self._type = 'dir'
            self._all_fnames = {os.path.relpath(os.path.join(root, fname), start=self._path).replace(os.sep, '/')
                                for root, _dirs, files in os.walk(self._path) for fname in files}
        elif os.path.splitext(self._path)[1].lower() == '.zip':
            if not os.path.isfile(self._path):
                raise FileNotFoundError(f'dataset zip not found: {self._path}')
            self._type = 'zip'
            self._all_fnames = set(self._get_zipfile().namelist())
        else:
            raise ValueError(f'dataset path must be a folder or a .zip file: {self._path}')

        self._image_fnames = sorted(f for f in self._all_fnames if image_io.is_image_file(f))
        if len(self._image_fnames) == 0:
            raise ValueError(f'no image files found in {self._path}')

        image_shape = self._check_image_headers()
        if resolution is not None and image_shape[1] != resolution:
            raise ValueError(f'{self._path}: images are {image_shape[1]}x{image_shape[2]}, '
                             f'but resolution={resolution} was requested')
        if max_size is not None and max_size < 1:
            raise ValueError(f'max_size must be None or a positive int, got {max_size}')
        self._name = os.path.splitext(os.path.basename(os.path.normpath(self._path)))[0]
        self._raw_shape = [len(self._image_fnames)] + image_shape
        self._use_labels = use_labels
        self._raw_labels: Optional[np.ndarray] = None
        self._label_shape: Optional[List[int]] = None

        # Apply max_size: a seeded random subset, kept in file order.
        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if (max_size is not None) and (self._raw_idx.size > max_size):
            np.random.RandomState(random_seed).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])

        # Apply xflip: the second half of the indices are mirrored copies.
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    def _get_raw_labels(self) -> np.ndarray:
        """(num_raw_images, label_dim) float32 or (num_raw_images,) int64; (num_raw_images, 0) without labels."""
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            self._raw_labels = labels
        return self._raw_labels

    def _get_zipfile(self) -> zipfile.ZipFile:
        if self._zipfile is None:
            try:
                self._zipfile = zipfile.ZipFile(self._path)
            except zipfile.BadZipFile as err:
                raise ValueError(f'{self._path} is not a valid zip file ({err}); '
                                 'rebuild it with dataset_tool.py') from err
        return self._zipfile

    def _open_file(self, fname: str):
        if self._type == 'dir':
            return open(os.path.join(self._path, fname), 'rb')
        return self._get_zipfile().open(fname, 'r')

    def close(self) -> None:
        try:
            if self._zipfile is not None:
                self._zipfile.close()
        finally:
            self._zipfile = None

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _raw_labels=None, _zipfile=None)

    def _check_image_headers(self) -> List[int]:
        """[3, H, W] shared by all images; reads headers only (PIL decodes pixels lazily).

        Images are read as RGB whatever their mode (see `_load_raw_image`), so only sizes must agree.
        """
        sizes: Dict[Tuple[int, int], str] = {}
        for fname in self._image_fnames:
            try:
                with self._open_file(fname) as f, PIL.Image.open(f) as image:
                    size = (image.height, image.width)
            except (OSError, zipfile.BadZipFile, PIL.UnidentifiedImageError) as err:
                raise ValueError(f'{self._path}: cannot read image "{fname}" ({err})') from err
            if size[0] != size[1]:
                raise ValueError(f'{self._path}: image "{fname}" is {size[1]}x{size[0]} (WxH); images must be square')
            sizes.setdefault(size, fname)
            if len(sizes) > 1:
                (size_a, fname_a), (size_b, fname_b) = list(sizes.items())[:2]
                raise ValueError(f'{self._path}: images differ in size: "{fname_a}" is {size_a[1]}x{size_a[0]}, '
                                 f'"{fname_b}" is {size_b[1]}x{size_b[0]}; all images must have one size')
        return [3, *next(iter(sizes))]

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        """(3, H, W) uint8 RGB, through the project's image reader (16-bit, float and alpha handled)."""
        fname = self._image_fnames[raw_idx]
        try:
            with self._open_file(fname) as f:
                data = f.read()
        except (OSError, zipfile.BadZipFile) as err:
            raise ValueError(f'{self._path}: image "{fname}" is corrupt ({err})') from err
        try:
            image = image_io.read_image(data, name=fname)
        except image_io.ImageReadError as err:
            raise ValueError(f'{self._path}: {err}') from err
        return image.transpose(2, 0, 1)  # HWC => CHW

    def _load_raw_labels(self) -> Optional[np.ndarray]:
        """Labels in image order: (N, 25) float32 camera labels or (N,) int64 class indices; None without
        dataset.json."""
        if 'dataset.json' not in self._all_fnames:
            return None
        with self._open_file('dataset.json') as f:
            labels = read_dataset_labels(f, f'{self._path}: dataset.json')
        if labels is None:
            return None
        return _labels_in_image_order(labels, self._image_fnames, self._path)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # The interpreter may be shutting down; nothing useful to report.
            pass

    def __len__(self) -> int:
        return self._raw_idx.size

    def __getitem__(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        """(image (C, H, W) uint8, label (label_dim,) float32), mirrored together when xflip applies."""
        image = self._load_raw_image(self._raw_idx[idx])
        if list(image.shape) != self.image_shape or image.dtype != np.uint8:
            raise ValueError(f'image {self._raw_idx[idx]} is {image.dtype} {list(image.shape)}; '
                             f'the dataset is uint8 {self.image_shape}')
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """(label_dim,) float32; camera labels of mirrored items are mirrored (`xflip_camera_label`)."""
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        if self._xflip[idx] and label.shape == (CAMERA_LABEL_DIM,):
            return xflip_camera_label(label)
        return label.copy()

    def get_details(self, idx: int) -> dnnlib.EasyDict:
        """raw_idx, xflip and the stored (unmirrored) raw_label of item `idx`."""
        d = dnnlib.EasyDict()
        d.raw_idx = int(self._raw_idx[idx])
        d.xflip = (int(self._xflip[idx]) != 0)
        d.raw_label = self._get_raw_labels()[d.raw_idx].copy()
        return d

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> List[int]:
        """[C, H, W]."""
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        return self.image_shape[1]

    @property
    def label_shape(self) -> List[int]:
        if self._label_shape is None:
            raw_labels = self._get_raw_labels()
            if raw_labels.dtype == np.int64:
                self._label_shape = [int(np.max(raw_labels)) + 1]
            else:
                self._label_shape = list(raw_labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        return self.label_shape[0]

    @property
    def has_labels(self) -> bool:
        return any(x != 0 for x in self.label_shape)

    @property
    def has_onehot_labels(self) -> bool:
        return self._get_raw_labels().dtype == np.int64


def _labels_in_image_order(labels: Dict[str, object], image_fnames: List[str], where: str) -> np.ndarray:
    """Validates the label dict against the image list and returns the labels as one array."""
    missing = [f for f in image_fnames if f not in labels]
    extra = sorted(set(labels) - set(image_fnames))
    if missing or extra:
        raise ValueError(f'{where}: dataset.json does not match the images: '
                         f'{len(missing)} image(s) without a label {missing[:5]}, '
                         f'{len(extra)} label(s) without an image {extra[:5]}')

    if all(isinstance(labels[f], int) and not isinstance(labels[f], bool) for f in image_fnames):
        class_labels = np.array([labels[f] for f in image_fnames], dtype=np.int64)
        if np.any(class_labels < 0):
            raise ValueError(f'{where}: class labels must be >= 0, got {class_labels.min()}')
        return class_labels

    rows = checked_camera_labels({fname: labels[fname] for fname in image_fnames}, f'{where}: dataset.json')
    return np.stack([rows[fname] for fname in image_fnames])
