"""The images a metric measures, as uint8 batches (N, 3, H, W), StyleGAN3's metric input.

- `dataset_images`: an EG3D-format dataset (folder or zip), optionally mirrored;
- `generator_images`: samples of G, latents z ~ N(0, I) and camera labels drawn from the dataset's
  labels, as EG3D's metrics condition and render them; item i always gets the same z and camera
  (seeded by i), so results do not depend on the number of GPUs;
- `ImageFolder`: every image of a folder (`calc_metrics.py --images`), for other methods' outputs.
"""

import os
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np
import PIL.Image
import torch

from dnnlib.image_io import is_image_file, read_image
from metrics.metric_options import MetricOptions
from training import inference
from training.dataset import ImageFolderDataset

# ----------------------------------------------------------------------------
# The dataset.


def open_dataset(opts: MetricOptions, **overrides) -> ImageFolderDataset:
    """The `--data` dataset as a `training.dataset.ImageFolderDataset`."""
    kwargs = {k: v for k, v in dict(opts.dataset_kwargs, **overrides).items() if k != 'class_name'}
    if not kwargs.get('path'):
        raise ValueError('this metric needs a dataset (--data): its images, or its camera labels for sampling')
    if not os.path.exists(kwargs['path']):
        raise ValueError(f'dataset "{kwargs["path"]}" does not exist; give --data')
    return ImageFolderDataset(**kwargs)


def dataset_images(opts: MetricOptions, dataset: ImageFolderDataset, indices: Sequence[int]) -> Iterator[torch.Tensor]:
    """uint8 batches (B, 3, H, W) of `dataset` items `indices`; grey images are repeated to RGB."""
    for start in range(0, len(indices), opts.batch_size):
        batch = np.stack([dataset[i][0] for i in indices[start:start + opts.batch_size]])
        if batch.shape[1] == 1:
            batch = np.repeat(batch, 3, axis=1)
        yield torch.from_numpy(batch).to(opts.device)


def dataset_labels(opts: MetricOptions) -> np.ndarray:
    """(N, c_dim) labels for sampling G: the dataset's, or none for an unconditional network."""
    if opts.G.c_dim == 0:
        return np.zeros([0, 0], dtype=np.float32)
    dataset = open_dataset(opts, use_labels=True, max_size=None)
    labels = np.stack([dataset.get_label(i) for i in range(len(dataset))])
    if labels.shape[1] == 0:
        raise ValueError(f'dataset "{dataset.name}" has no labels (no dataset.json); sampling the network needs its '
                         f'camera labels: use the dataset the network was trained on')
    if labels.shape[1] != opts.G.c_dim:
        raise ValueError(f'dataset "{dataset.name}" has {labels.shape[1]}-d labels; the network expects '
                         f'{opts.G.c_dim}-d camera labels: use the dataset the network was trained on')
    return labels

# ----------------------------------------------------------------------------
# Samples of the generator.


def latents_and_cameras(opts: MetricOptions, labels: np.ndarray, indices: Sequence[int]
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """z (B, z_dim) and c (B, c_dim) of sample items `indices`, each seeded by (opts.seed, item).

    labels: (num_labels, c_dim) float32 dataset labels; each item draws one at random (EG3D's
    metrics condition and render with labels drawn from the dataset).
    """
    G = opts.G
    zs, cs = [], []
    for item in indices:
        rng = np.random.default_rng([opts.seed, int(item)])
        zs.append(rng.standard_normal(G.z_dim))
        cs.append(labels[rng.integers(len(labels))] if len(labels) else np.zeros(G.c_dim))
    z = torch.from_numpy(np.stack(zs)).to(torch.float32).to(opts.device)
    c = torch.from_numpy(np.stack(cs)).to(torch.float32).to(opts.device)
    return z, c


def batch_seed(opts: MetricOptions, first_item: int) -> int:
    """The seed of the batch starting at sample item `first_item`: metrics repeat for a given batch size."""
    return int(np.random.SeedSequence([opts.seed, int(first_item)]).generate_state(1)[0])


def generator_images(opts: MetricOptions, labels: np.ndarray, indices: Sequence[int],
                     **G_kwargs) -> Iterator[torch.Tensor]:
    """uint8 batches (B, 3, R, R) of G's samples for items `indices` (see `latents_and_cameras`)."""
    G_kwargs = dict(opts.G_kwargs, **G_kwargs)
    for start in range(0, len(indices), opts.batch_size):
        batch = indices[start:start + opts.batch_size]
        z, c = latents_and_cameras(opts, labels, batch)
        with torch.no_grad(), inference.seeded_rng(opts.device, batch_seed(opts, batch[0])):
            images = opts.G(z, c, **G_kwargs)['image']
        yield inference.uint8_tensor(images)

# ----------------------------------------------------------------------------
# A folder of images.


class ImageFolder:
    """Every image file under a folder, in sorted order; all must be readable and of one size.

    Files that are not images are refused by name (a metric over "a folder of outputs" should not
    silently skip half of them); so are images of different sizes, because each detector resizes
    all images alike and mixing sizes mixes resampling artefacts. Hidden files are left out. Grey,
    16-bit and RGBA images become 8-bit RGB (`dnnlib.image_io.read_image`; alpha over white).
    """

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise ValueError(f'--images folder "{path}" does not exist or is not a folder')
        files = sorted(os.path.relpath(os.path.join(root, f), path) for root, _dirs, names in os.walk(path)
                       for f in names if not f.startswith('.'))
        others = [f for f in files if not is_image_file(f)]
        if others:
            raise ValueError(f'--images folder "{path}" holds {len(others)} file(s) that are not images: '
                             f'{", ".join(others[:5])}{" ..." if len(others) > 5 else ""}; move them out')
        if not files:
            raise ValueError(f'--images folder "{path}" holds no images')
        sizes: Dict[Tuple[int, int], str] = {}
        for f in files:
            try:
                with PIL.Image.open(os.path.join(path, f)) as image:
                    sizes.setdefault(image.size, f)
            except (OSError, PIL.UnidentifiedImageError) as err:
                raise ValueError(f'--images: cannot read "{os.path.join(path, f)}" as an image ({err})') from err
        if len(sizes) > 1:
            (size_a, file_a), (size_b, file_b) = list(sizes.items())[:2]
            raise ValueError(f'--images folder "{path}" mixes image sizes: "{file_a}" is {size_a[0]}x{size_a[1]}, '
                             f'"{file_b}" is {size_b[0]}x{size_b[1]}; resize them to one size first')
        self.path = path
        self.files = files
        self.size = next(iter(sizes))

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        """(3, H, W) uint8 RGB, read by `dnnlib.image_io.read_image` (alpha over white)."""
        fname = os.path.join(self.path, self.files[index])
        image = read_image(fname)
        if image.shape[1::-1] != self.size:  # an EXIF rotation can turn the stored size
            raise ValueError(f'--images: "{fname}" is {image.shape[1]}x{image.shape[0]} once its EXIF orientation '
                             f'is applied, the other images {self.size[0]}x{self.size[1]}; save it upright')
        return image.transpose(2, 0, 1)

    def images(self, opts: MetricOptions, indices: Sequence[int]) -> Iterator[torch.Tensor]:
        for start in range(0, len(indices), opts.batch_size):
            batch = np.stack([self.read(i) for i in indices[start:start + opts.batch_size]])
            yield torch.from_numpy(batch).to(opts.device)
