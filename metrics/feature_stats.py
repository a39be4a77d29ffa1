"""Feature statistics of the image sources, gathered over processes, and the dataset statistics cache.

`FeatureStats.merge_across_ranks` gathers the features or sums when torch.distributed is
initialised. Dataset statistics are cached in `<cache>/gan-metrics/` under a key made of the
dataset's content hash (sha256 of the zip, or of every image of a folder), the detector's weights
hash and the options, as a plain .npz file.
"""

import hashlib
import json
import os
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

import dnnlib
from dnnlib.image_io import list_images
from metrics.detectors import detector_fingerprint, extract_features, get_detector
from metrics.image_sources import dataset_images, dataset_labels, generator_images, open_dataset
from metrics.metric_options import MetricOptions, progress_bar, shard
from torch_utils import distributed


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
        gathered = distributed.all_gather(self.to_payload(), num_gpus)
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
        with dnnlib.util.atomic_output(path) as tmp_path, open(tmp_path, 'wb') as f:
            np.savez(f, **arrays)

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
    """sha256 of a dataset's images: the bytes of the zip, or the sorted relative paths and contents of the
    image files of a folder (those `training.dataset.ImageFolderDataset` reads)."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        files = [('.', path)]
    else:
        files = [(name, os.path.join(path, name)) for name in list_images(path)]
    for name, fname in files:
        digest.update(name.encode())
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
