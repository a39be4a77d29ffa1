"""What every metric shares: options, image sources, feature detectors, feature statistics, the stats cache.

Image sources yield uint8 batches (N, 3, H, W), StyleGAN3's metric input:
- `dataset_images`: an EG3D-format dataset (folder or zip), optionally mirrored;
- `generator_images`: samples of G, latents z ~ N(0, I) and camera labels drawn from the dataset's
  labels, as EG3D's metrics condition and render them; item i always gets the same z and camera
  (seeded by i), so results do not depend on the number of GPUs;
- `ImageFolder`: every image of a folder (`calc_metrics.py --images`), for other methods' outputs.

Work is split over processes item by item (`shard`); `FeatureStats.merge_across_ranks` gathers the
features or sums when torch.distributed is initialised. Dataset statistics are cached in
`<cache>/gan-metrics/` under a key made of the dataset's content hash (sha256 of the zip, or of every
file of a folder), the detector's weights hash and the options, as a plain .npz file.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import PIL.Image
import torch
import tqdm

import dnnlib
from dnnlib.image_io import read_image
from metrics.inception import INCEPTION_URL, InceptionV3
from torch_utils import distributed
from training.dataset import ImageFolderDataset

# ----------------------------------------------------------------------------
# Options.


class MetricOptions:
    """Everything a metric function needs.

    G: generator (None with `image_folder`); G_kwargs: extra arguments of G.synthesis (domain, alpha);
    dataset_kwargs: `training.dataset.ImageFolderDataset` arguments (path, xflip, use_labels);
    image_folder: an `ImageFolder` evaluated instead of G's samples; weights: {'inception', 'vgg16',
    'arcface': path or URL or None}; allow_random_weights: random detector stand-ins (tests only);
    G_source: the source (natural) network for geometry preservation; batch_size: images per forward.
    """

    def __init__(self, G: Optional[torch.nn.Module] = None, G_kwargs: Optional[dict] = None,
                 dataset_kwargs: Optional[dict] = None, num_gpus: int = 1, rank: int = 0,
                 device: Optional[torch.device] = None, progress: bool = False, cache: bool = True,
                 image_folder: Optional['ImageFolder'] = None, weights: Optional[dict] = None,
                 allow_random_weights: bool = False, G_source: Optional[torch.nn.Module] = None,
                 batch_size: int = 8, seed: int = 0):
        if not 0 <= rank < num_gpus:
            raise ValueError(f'rank must be in [0, num_gpus), got rank={rank}, num_gpus={num_gpus}')
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs or {})
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs or {})
        self.num_gpus = num_gpus
        self.rank = rank
        self.device = device if device is not None else torch.device('cpu')
        self.progress = progress and rank == 0
        self.cache = cache
        self.image_folder = image_folder
        self.weights = dnnlib.EasyDict(dict(inception=INCEPTION_URL, vgg16=None, arcface=None), **(weights or {}))
        self.allow_random_weights = allow_random_weights
        self.G_source = G_source
        self.batch_size = batch_size
        self.seed = seed
        self.num_images: Dict[str, int] = {}  # images each side used, filled in by the metrics


def shard(indices: Sequence[int], num_gpus: int, rank: int) -> List[int]:
    """The items this process handles: every num_gpus-th one starting at `rank`."""
    return list(indices)[rank::num_gpus]


def progress_bar(opts: MetricOptions, total: int, desc: str) -> tqdm.tqdm:
    return tqdm.tqdm(total=total, desc=desc, unit='img', disable=not opts.progress, leave=False)

# ----------------------------------------------------------------------------
# Image sources.


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) generator output in [-1, 1] -> uint8 with EG3D's rounding (x * 127.5 + 128, clamped)."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def open_dataset(opts: MetricOptions, **overrides):
    """The `--data` dataset as a `training.dataset.ImageFolderDataset`."""
    kwargs = {k: v for k, v in dict(opts.dataset_kwargs, **overrides).items() if k != 'class_name'}
    if not kwargs.get('path'):
        raise ValueError('this metric needs a dataset (--data): its images, or its camera labels for sampling')
    if not os.path.exists(kwargs['path']):
        raise ValueError(f'dataset "{kwargs["path"]}" does not exist; give --data')
    return ImageFolderDataset(**kwargs)


def dataset_images(opts: MetricOptions, dataset, indices: Sequence[int]) -> Iterator[torch.Tensor]:
    """uint8 batches (B, 3, H, W) of `dataset` items `indices`; grey images are repeated to RGB."""
    for start in range(0, len(indices), opts.batch_size):
        batch = np.stack([dataset[i][0] for i in indices[start:start + opts.batch_size]])
        if batch.shape[1] == 1:
            batch = np.repeat(batch, 3, axis=1)
        yield torch.from_numpy(batch).to(opts.device)


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


@contextlib.contextmanager
def fixed_seed(opts: MetricOptions, seed: int) -> Iterator[None]:
    """Run the body with torch's global RNG seeded by `seed`, restoring the RNG afterwards.

    EG3D's renderer jitters its depth samples and the synthesis network draws noise inputs with
    torch's RNG: renders that must be compared (two views, natural and stylised) use the same seed.
    """
    devices = [opts.device] if opts.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


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
        with torch.no_grad(), fixed_seed(opts, batch_seed(opts, batch[0])):
            images = images_to_uint8(opts.G(z, c, **G_kwargs)['image'])
        yield images


class ImageFolder:
    """Every image file under a folder, in sorted order; all must be readable and of one size.

    Files that are not images are refused by name (a metric over "a folder of outputs" should not
    silently skip half of them); so are images of different sizes, because each detector resizes
    all images alike and mixing sizes mixes resampling artefacts. Grey, 16-bit and RGBA images
    become 8-bit RGB (`dnnlib.image_io.read_image`; alpha over white).
    """

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise ValueError(f'--images folder "{path}" does not exist or is not a folder')
        PIL.Image.init()
        files = sorted(os.path.relpath(os.path.join(root, f), path) for root, _dirs, names in os.walk(path)
                       for f in names if not f.startswith('.'))
        others = [f for f in files if os.path.splitext(f)[1].lower() not in PIL.Image.EXTENSION]
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

# ----------------------------------------------------------------------------
# Feature detectors: uint8 (N, 3, H, W) -> features (N, D).

_detector_cache: Dict[tuple, torch.nn.Module] = {}


@contextlib.contextmanager
def weights_option_hint(network: str) -> Iterator[None]:
    """Missing weight files also name the calc_metrics.py option that takes them."""
    try:
        yield
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{err} (calc_metrics.py: --{network}=PATH_OR_URL)') from err
DETECTORS = ('inception', 'inception_probs', 'vgg16')


def get_detector(opts: MetricOptions, name: str) -> torch.nn.Module:
    """The network behind feature kind `name` (see `DETECTORS`), built once per weights and device."""
    network = 'inception' if name.startswith('inception') else name
    key = (network, opts.weights[network], opts.allow_random_weights, str(opts.device))
    if key not in _detector_cache:
        with weights_option_hint(network):
            if network == 'inception':
                detector = InceptionV3(opts.weights.inception, allow_random_weights=opts.allow_random_weights)
            elif network == 'vgg16':
                from metrics.precision_recall import VGG16Detector  # here: that module imports this one
                detector = VGG16Detector(opts.weights.vgg16, allow_random_weights=opts.allow_random_weights)
            else:
                raise ValueError(f'unknown feature detector "{name}"; expected one of {DETECTORS}')
        _detector_cache[key] = detector.to(opts.device)
    return _detector_cache[key]


def extract_features(opts: MetricOptions, name: str, images: torch.Tensor) -> torch.Tensor:
    """Features (N, D) of kind `name` of uint8 images (N, 3, H, W).

    inception: pool features (2048); inception_probs: class probabilities (1008); vgg16: fc7 (4096).
    """
    detector = get_detector(opts, name)
    with torch.no_grad():
        if name == 'inception':
            return detector(images)[0]
        if name == 'inception_probs':
            return detector.class_probabilities(detector(images)[0])
        return detector(images)


def detector_fingerprint(detector: torch.nn.Module) -> str:
    """sha256 of a detector's weights: the stats cache is invalid when the weights change."""
    digest = hashlib.sha256()
    for name, tensor in sorted(detector.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()

# ----------------------------------------------------------------------------
# Feature statistics.


class FeatureStats:
    """Running statistics of feature vectors: all of them (`capture_all`) and / or their mean and covariance."""

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False, max_items: Optional[int] = None):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features: Optional[int] = None
        self.all_features: List[np.ndarray] = []
        self.raw_mean: Optional[np.ndarray] = None  # sum of x, float64
        self.raw_cov: Optional[np.ndarray] = None   # sum of x x^T, float64

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x: np.ndarray) -> None:
        """Add (N, D) features (beyond max_items they are ignored)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f'features must be (N, D), got shape {x.shape}')
        if self.num_features is None:
            self.num_features = x.shape[1]
            if self.capture_mean_cov:
                self.raw_mean = np.zeros([x.shape[1]], dtype=np.float64)
                self.raw_cov = np.zeros([x.shape[1], x.shape[1]], dtype=np.float64)
        elif x.shape[1] != self.num_features:
            raise ValueError(f'features are {x.shape[1]}-d, earlier ones were {self.num_features}-d')
        if self.max_items is not None:
            x = x[:max(self.max_items - self.num_items, 0)]
        self.num_items += x.shape[0]
        if self.capture_all:
            self.all_features.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self.raw_mean += x64.sum(axis=0)
            self.raw_cov += x64.T @ x64

    def get_all(self) -> np.ndarray:
        if not self.capture_all:
            raise ValueError('these statistics were collected without capture_all')
        return np.concatenate(self.all_features) if self.all_features else np.zeros([0, self.num_features or 0],
                                                                                      np.float32)

    def get_mean_cov(self) -> Tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and covariance (D, D), the latter normalised by N as StyleGAN3's metrics do."""
        if not self.capture_mean_cov or self.num_items == 0:
            raise ValueError('no mean / covariance: collected without capture_mean_cov or from no items')
        mean = self.raw_mean / self.num_items
        return mean, self.raw_cov / self.num_items - np.outer(mean, mean)

    def merge_across_ranks(self, num_gpus: int) -> None:
        """Combine the statistics of all processes (no-op for one process)."""
        if num_gpus == 1:
            return
        gathered: List[Optional[dict]] = [None] * num_gpus
        torch.distributed.all_gather_object(gathered, self.to_payload())
        self.num_items = 0
        self.all_features, self.raw_mean, self.raw_cov, self.num_features = [], None, None, None
        for payload in gathered:
            self.add_payload(payload)

    def to_payload(self) -> dict:
        """What one process contributes to `merge_across_ranks` (plain arrays and counts)."""
        return dict(num_items=self.num_items, num_features=self.num_features, raw_mean=self.raw_mean,
                    raw_cov=self.raw_cov, all=self.get_all() if self.capture_all else None)

    def add_payload(self, payload: dict) -> None:
        """Add another process's (or file's) `to_payload()` to these statistics."""
        if payload['num_features'] is None:
            return
        self.num_features = payload['num_features']
        self.num_items += payload['num_items']
        if self.capture_all:
            self.all_features.append(payload['all'])
        if self.capture_mean_cov:
            self.raw_mean = payload['raw_mean'] + (0 if self.raw_mean is None else self.raw_mean)
            self.raw_cov = payload['raw_cov'] + (0 if self.raw_cov is None else self.raw_cov)

    def save(self, path: str) -> None:
        """Write an .npz atomically (temp file, then rename)."""
        arrays = dict(num_items=np.int64(self.num_items), num_features=np.int64(self.num_features or 0))
        if self.capture_all:
            arrays['all'] = self.get_all()
        if self.capture_mean_cov:
            arrays.update(raw_mean=self.raw_mean, raw_cov=self.raw_cov)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix='.npz', dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str, capture_all: bool = False, capture_mean_cov: bool = False) -> 'FeatureStats':
        stats = cls(capture_all=capture_all, capture_mean_cov=capture_mean_cov)
        with np.load(path, allow_pickle=False) as data:
            stats.add_payload(dict(num_items=int(data['num_items']), num_features=int(data['num_features']),
                                    all=data['all'] if capture_all else None,
                                    raw_mean=data['raw_mean'] if capture_mean_cov else None,
                                    raw_cov=data['raw_cov'] if capture_mean_cov else None))
        return stats

# ----------------------------------------------------------------------------
# Statistics of the three image sources.


def dataset_content_hash(path: str) -> str:
    """sha256 of a dataset's bytes: the zip file, or every file of a folder (sorted relative paths and contents)."""
    digest = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, f) for root, _dirs, names in os.walk(path) for f in names)
    for fname in files:
        digest.update(os.path.relpath(fname, path).encode())
        with open(fname, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                digest.update(chunk)
    return digest.hexdigest()


def _collect(opts: MetricOptions, name: str, batches: Iterator[torch.Tensor], num_items: int, desc: str,
             **stats_kwargs) -> FeatureStats:
    stats = FeatureStats(**stats_kwargs)
    with progress_bar(opts, num_items, desc) as bar:
        for images in batches:
            stats.append(extract_features(opts, name, images).cpu().numpy())
            bar.update(images.shape[0] * opts.num_gpus)
    stats.merge_across_ranks(opts.num_gpus)
    return stats


def compute_feature_stats_for_dataset(opts: MetricOptions, name: str, max_items: Optional[int] = None,
                                      **stats_kwargs) -> FeatureStats:
    """Features of kind `name` of the first `max_items` dataset items (all by default; mirrored copies count)."""
    dataset = open_dataset(opts, use_labels=False, max_size=None)
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    opts.num_images['real'] = num_items
    cache_file = None
    if opts.cache:
        key = json.dumps(dict(name=name, num_items=num_items, xflip=bool(opts.dataset_kwargs.get('xflip')),
                              detector=detector_fingerprint(get_detector(opts, name)),
                              data=dataset_content_hash(opts.dataset_kwargs.path), **stats_kwargs), sort_keys=True)
        key_hash = hashlib.sha256(key.encode()).hexdigest()[:24]
        cache_file = dnnlib.util.make_cache_dir_path('gan-metrics', f'{dataset.name}-{name}-{key_hash}.npz')
        # Every process must take the same path: one that computes would wait for the others in the merge.
        if distributed.all_true(os.path.isfile(cache_file), opts.num_gpus):
            return FeatureStats.load(cache_file, **stats_kwargs)
    indices = shard(range(num_items), opts.num_gpus, opts.rank)
    stats = _collect(opts, name, dataset_images(opts, dataset, indices), num_items, 'dataset features', **stats_kwargs)
    if cache_file is not None and opts.rank == 0:
        stats.save(cache_file)
    return stats


def compute_feature_stats_for_generator(opts: MetricOptions, name: str, num_items: int,
                                        G_kwargs: Optional[dict] = None, **stats_kwargs) -> FeatureStats:
    """Features of `num_items` samples of G, or of every image of `opts.image_folder` when it is set.

    G_kwargs override `opts.G_kwargs` (e.g. alpha=1 for stylised samples).
    """
    if opts.image_folder is not None:
        num_items = len(opts.image_folder)
        indices = shard(range(num_items), opts.num_gpus, opts.rank)
        batches = opts.image_folder.images(opts, indices)
    else:
        labels = dataset_labels(opts)
        indices = shard(range(num_items), opts.num_gpus, opts.rank)
        batches = generator_images(opts, labels, indices, **(G_kwargs or {}))
    opts.num_images['gen'] = num_items
    return _collect(opts, name, batches, num_items, 'generated features', **stats_kwargs)


def check_num_images(metric: str, needed: int, available: int, what: str) -> None:
    """Refuse a metric on fewer images than it is defined for."""
    if available < needed:
        raise ValueError(f'{metric} needs at least {needed} images {what}, got {available}')

# ----------------------------------------------------------------------------
# Paired renders for the 3-D and stylisation metrics.


def latent_batches(opts: MetricOptions, num_items: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor, int]]:
    """(z, c, seed) batches of this process's share of sample items 0..num_items-1.

    See `latents_and_cameras`; render each batch under `fixed_seed(opts, seed)`.
    """
    if opts.G is None:
        raise ValueError('this metric renders views of a network: give --network (it does not work with --images)')
    labels = dataset_labels(opts)
    indices = shard(range(num_items), opts.num_gpus, opts.rank)
    for start in range(0, len(indices), opts.batch_size):
        batch = indices[start:start + opts.batch_size]
        yield (*latents_and_cameras(opts, labels, batch), batch_seed(opts, batch[0]))


def check_stylised(opts: MetricOptions) -> None:
    """Refuse natural-vs-stylised metrics without a style (or a separate natural network) to compare."""
    if opts.G is None:
        raise ValueError('this metric renders views of a network: give --network (it does not work with --images)')
    if opts.G_source is None and opts.G_kwargs.get('domain') is None:
        raise ValueError('this metric compares natural and stylised renders: give a network with a stored domain '
                         '(--domain) or an exemplar encoder (--exemplar), or the natural network (--source-network)')


def render_natural_and_stylised(opts: MetricOptions, z: torch.Tensor, c: torch.Tensor, seed: int
                                ) -> Tuple[dict, dict]:
    """G's outputs for the same latent, camera and random draws, without and with the style.

    Natural: the source network `opts.G_source` when given, else G with alpha = 0 (the DAM makes that
    exactly the source EG3D). Stylised: G with the chosen domain and alpha (default 1).
    """
    check_stylised(opts)
    stylised_kwargs = dict(opts.G_kwargs)
    with torch.no_grad():
        with fixed_seed(opts, seed):
            stylised = opts.G(z, c, **stylised_kwargs)
        with fixed_seed(opts, seed):
            if opts.G_source is not None:
                natural = opts.G_source(z, c)
            else:
                natural = opts.G(z, c, **dict(stylised_kwargs, alpha=0))
    return natural, stylised


def collect_rows(opts: MetricOptions, rows: Iterator[np.ndarray], num_items: int, desc: str) -> np.ndarray:
    """Per-sample result rows (B, K) of every process, stacked into (num_items, K) on every process."""
    stats = FeatureStats(capture_all=True)
    with progress_bar(opts, num_items, desc) as bar:
        for batch in rows:
            stats.append(batch)
            bar.update(batch.shape[0] * opts.num_gpus)
    stats.merge_across_ranks(opts.num_gpus)
    opts.num_images['gen'] = stats.num_items
    return stats.get_all()
