"""Inception-v3 as the FID / KID / IS protocol uses it (the 2015-12-05 TensorFlow graph).

The layer layout is torchvision's `Inception3` with the FID variants of the mixed blocks: the
average pools inside Mixed_5*, Mixed_6b..e and Mixed_7b ignore padded pixels, and Mixed_7c pools
its last branch with a 3x3 max-pool. Module names are those of the published PyTorch port of the
TensorFlow weights, `pt_inception-2015-12-05-6726825d.pth`, so its state dict loads as is (read with
`torch.load(weights_only=True)`; no code in the file runs).

Input: uint8 images (N, 3, H, W) of any size, as StyleGAN3's metrics feed them. They are resized to
299 x 299 as the TensorFlow graph's ResizeBilinear does (TensorFlow 1: output pixel j samples input
position j * H / 299, no half-pixel centres, no antialiasing; StyleGAN3's detector reproduces it with a
shifted sampling grid) and mapped to [-1, 1] by (x - 128) / 128, the normalisation of the graph.
Output: 2048-d pool features (FID, KID) and 1008 logits (IS; the extra 8 classes of the 2015 graph
are unused by ImageNet).
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from torch_utils import misc
from training.pretrained_weights import load_pretrained_state

INCEPTION_FILENAME = 'pt_inception-2015-12-05-6726825d.pth'
INCEPTION_URL = 'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/' + INCEPTION_FILENAME
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
_BN_EPS = 1e-3  # the TensorFlow graph's batch-norm epsilon


class BasicConv2d(torch.nn.Module):
    """Convolution without bias, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = torch.nn.BatchNorm2d(out_channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average over valid pixels only (the TensorFlow graph's pooling)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(torch.nn.Module):
    """Mixed_5b/c/d: 1x1, 5x5, double 3x3 and pooled branches; 224 + pool_features channels out."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool(x))], dim=1)


class InceptionB(torch.nn.Module):
    """Mixed_6a: grid reduction 35 -> 17; in_channels + 480 channels out."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], dim=1)


class InceptionC(torch.nn.Module):
    """Mixed_6b..e: factorised 7x7 branches of width `channels_7x7`; 768 channels out."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), seven, double, self.branch_pool(_avg_pool(x))], dim=1)


class InceptionD(torch.nn.Module):
    """Mixed_7a: grid reduction 17 -> 8; in_channels + 512 channels out."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], dim=1)


class InceptionE(torch.nn.Module):
    """Mixed_7b/c: expanded 3x3 branches; 2048 channels out. `max_pool`: Mixed_7c's pooled branch."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], dim=1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], dim=1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], dim=1)


def _tf1_bilinear_taps(in_size: int, out_size: int, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor]:
    """Along one axis of TensorFlow 1's bilinear resize: (lower index, upper index, upper weight), each
    (out_size,). Output j reads input position j * in_size / out_size, the last pixel repeating past the edge."""
    position = torch.arange(out_size, dtype=torch.float64, device=like.device) * (in_size / out_size)
    lower = position.floor().to(torch.int64).clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower, upper, (position - lower).to(like.dtype)


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size), resampled as the Inception graph's resize (see the module doc).
    PyTorch's bilinear interpolate uses half-pixel centres instead: a shift of up to 1.2 input pixels at 1024."""
    top, bottom, wy = _tf1_bilinear_taps(x.shape[2], size, x)
    x = torch.lerp(x[:, :, top, :], x[:, :, bottom, :], wy[:, None])
    left, right, wx = _tf1_bilinear_taps(x.shape[3], size, x)
    return torch.lerp(x[..., left], x[..., right], wx)


class InceptionV3(torch.nn.Module):
    """The FID Inception-v3. forward(uint8 (N, 3, H, W)) -> (features (N, 2048), logits (N, 1008)).

    weights: path or URL of `pt_inception-2015-12-05-6726825d.pth` (None: the cache folder, see
    `training.pretrained_weights`); allow_random_weights: random stand-ins for tests only.
    """

    def __init__(self, weights: Optional[str] = None, allow_random_weights: bool = False):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(FEATURE_DIM, max_pool=True)
        self.fc = torch.nn.Linear(FEATURE_DIM, NUM_LOGITS)
        state = load_pretrained_state(weights, what='Inception-v3 (FID, KID, IS)', filename=INCEPTION_FILENAME,
                                      url_hint=INCEPTION_URL, allow_random_weights=allow_random_weights)
        if state is None:
            # Random stand-ins: He initialisation keeps the feature scale through the 90-odd ReLU layers
            # (with PyTorch's default init the pool features shrink to ~1e-8 and every FID is 0).
            for module in self.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity='relu')
        else:
            self.load_state_dict(state)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> 'InceptionV3':
        """A frozen network: stays in eval mode (batch-norm running statistics)."""
        return super().train(False)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float (N, 3, 299, 299) in [-1, 1] as the TensorFlow graph reads them."""
        misc.assert_shape(images, [None, 3, None, None], 'Inception input')
        if images.dtype != torch.uint8:
            raise ValueError(f'Inception input must be uint8 images (0..255), got {images.dtype}')
        x = images.to(torch.float32)
        if x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
            x = resize_bilinear_tf1(x, INPUT_SIZE)
        return (x - 128) / 128

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.preprocess(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        features = x.mean(dim=(2, 3))  # global average pool: (N, 2048)
        return features, self.fc(features)

    def class_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 2048) pool features -> (N, 1008) softmax class probabilities for the Inception Score.

        The output bias is left out, as in the original Inception Score code that StyleGAN3 matches.
        """
        return torch.softmax(features @ self.fc.weight.t(), dim=1)
