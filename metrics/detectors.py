"""Feature detectors: uint8 images (N, 3, H, W) -> features (N, D), each network built once per weights and device.

- inception: Inception-v3 pool features (2048), `metrics.inception` (FID, KID);
- inception_probs: its class probabilities (1008) (IS);
- vgg16: VGG-16 fc7 (4096, after ReLU) of images resized to 224 x 224 and normalised with the
  ImageNet mean and std (precision / recall). StyleGAN3 reads the same network from a TorchScript
  file (`vgg16.pkl`) that cannot be loaded without running code; here the network is
  `training.perceptual.VGGFeatures` with torchvision's `vgg16-397923af.pth` state dict, read with
  `weights_only=True`.
"""

import contextlib
import hashlib
from typing import Dict, Iterator, Optional

import torch
import torch.nn.functional as F

from metrics.inception import InceptionV3
from metrics.metric_options import MetricOptions
from training.perceptual import VGGFeatures

DETECTORS = ('inception', 'inception_probs', 'vgg16')
VGG_INPUT_SIZE = 224


class VGG16Detector(torch.nn.Module):
    """uint8 (N, 3, H, W) -> VGG-16 fc7 features (N, 4096)."""

    def __init__(self, weights: Optional[str] = None, allow_random_weights: bool = False):
        super().__init__()
        self.vgg = VGGFeatures(arch='vgg16', weights=weights, allow_random_weights=allow_random_weights,
                               layers=('fc7',))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(f'VGG-16 detector input must be uint8 images (0..255), got {images.dtype}')
        x = images.to(torch.float32)
        if x.shape[2:] != (VGG_INPUT_SIZE, VGG_INPUT_SIZE):
            # Area averaging when shrinking (no aliasing), bilinear when enlarging.
            mode = 'area' if min(x.shape[2:]) > VGG_INPUT_SIZE else 'bilinear'
            x = F.interpolate(x, size=(VGG_INPUT_SIZE, VGG_INPUT_SIZE), mode=mode,
                              **({} if mode == 'area' else dict(align_corners=False)))
        return self.vgg(x / 127.5 - 1)['fc7']


_detector_cache: Dict[tuple, torch.nn.Module] = {}


@contextlib.contextmanager
def weights_option_hint(network: str) -> Iterator[None]:
    """Missing weight files also name the calc_metrics.py option that takes them."""
    try:
        yield
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{err} (calc_metrics.py: --{network}=PATH_OR_URL)') from err


def get_detector(opts: MetricOptions, name: str) -> torch.nn.Module:
    """The network behind feature kind `name` (see `DETECTORS`), built once per weights and device."""
    network = 'inception' if name.startswith('inception') else name
    key = (network, opts.weights.get(network), opts.allow_random_weights, str(opts.device))
    if key not in _detector_cache:
        with weights_option_hint(network):
            if network == 'inception':
                detector = InceptionV3(opts.weights.inception, allow_random_weights=opts.allow_random_weights)
            elif network == 'vgg16':
                detector = VGG16Detector(opts.weights.vgg16, allow_random_weights=opts.allow_random_weights)
            else:
                raise ValueError(f'unknown feature detector "{name}"; expected one of {DETECTORS}')
        _detector_cache[key] = detector.to(opts.device)
    return _detector_cache[key]


def extract_features(opts: MetricOptions, name: str, images: torch.Tensor) -> torch.Tensor:
    """Features (N, D) of kind `name` of uint8 images (N, 3, H, W) (see the module docstring)."""
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
