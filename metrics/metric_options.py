"""What one metric run is given (`MetricOptions`) and how its work is split over processes.

Work is split item by item (`shard`): process `rank` of `num_gpus` handles items rank, rank +
num_gpus, ...; `metrics.feature_stats` gathers the results when torch.distributed is initialised.
"""

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import torch
import tqdm

import dnnlib
from metrics.inception import INCEPTION_URL

if TYPE_CHECKING:  # for the type hint only: image_sources imports this module
    from metrics.image_sources import ImageFolder


class MetricOptions:
    """Everything a metric function needs.

    G: generator (None with `image_folder`); G_kwargs: extra arguments of G.synthesis (domain, alpha);
    dataset_kwargs: `training.dataset.ImageFolderDataset` arguments (path, xflip, use_labels);
    image_folder: an `ImageFolder` evaluated instead of G's samples;
    weights: {'inception', 'vgg16', 'arcface': path or URL or None}; allow_random_weights: random
    detector stand-ins (tests only); G_source: the source (natural) network for geometry
    preservation; batch_size: images per forward; seed: the seed of every sample item's draws.
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


def check_num_images(metric: str, needed: int, available: int, what: str) -> None:
    """Refuse a metric on fewer images than it is defined for."""
    if available < needed:
        raise ValueError(f'{metric} needs at least {needed} images {what}, got {available}')
