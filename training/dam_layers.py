"""The Domain Adaptation Module's layer maths: domain modulation, ModRes and AdaIN (torch only).

Per modulated layer l (conv0 / conv1 / torgb of every synthesis and super-resolution block) the
domain code d_l (a w+-shaped code, (N, num_ws, w_dim), from a stored domain or the encoder):
- domain modulation: a second affine `affine1` B_l gives t_l = 1 + alpha * g * (B_l(d_l) - 1), and
  the layer's weights are modulated by s_l * t_l before the usual demodulation (g = 1 for the
  convolutions; for torgb g is its weight gain, the gain its s_l gets too);
- ModRes (blocks up to `modres_max_res`): x <- x + alpha * R(x, d_l) after each convolution, R two
  AdaIN-driven 3x3 convolutions (`res0` after conv0, `res1` after conv1).
B_l starts at weight 0 / bias 1 and R's output convolution at 0, so a fresh DAM is the identity:
the generator renders exactly what the source EG3D renders, for any code and any alpha; alpha = 0
or no domain input is always exactly EG3D. See docs/method.md for the equations and options.

The layers (training.layers, training.networks_stylegan2, training.superresolution) import this
module only; the generator-level parts (stored codes, the encoder, network surgery) live in
training.domain_adaptation.
"""

import contextlib
from typing import Optional

import numpy as np
import torch


@contextlib.contextmanager
def rng_neutral():
    """Build DAM modules without consuming the global CPU RNG, so that EG3D's own weights come out the
    same for a given seed with or without the DAM."""
    with torch.random.fork_rng(devices=[]):
        yield


def is_dam_module(module: torch.nn.Module) -> bool:
    """Whether `module` is one of the DAM's modules (a domain affine or a ModRes): their parameters are
    the DAM's (training.trainable selects them by this, wherever they sit)."""
    return getattr(module, 'part_of_dam', False) is True


def init_domain_affine_(affine: torch.nn.Module) -> torch.nn.Module:
    """Weight 0, bias 1: B(d) = 1 for every d, so the domain modulation starts as the identity; marks
    `affine` as a DAM module (is_dam_module)."""
    with torch.no_grad():
        affine.weight.zero_()
        affine.bias.fill_(1)
    affine.part_of_dam = True
    return affine


def apply_domain_modulation(styles: torch.Tensor, affine1: Optional[torch.nn.Module], d: Optional[torch.Tensor],
                            alpha: float, gain: float = 1) -> torch.Tensor:
    """styles (N, C) -> styles * t with t = 1 + alpha * gain * (affine1(d) - 1); d (N, w_dim).

    Returns `styles` itself when there is no domain input or alpha == 0 (exactly EG3D).
    """
    if d is None or alpha == 0:
        return styles
    if affine1 is None:
        raise ValueError('a domain code reached a layer built without the domain path '
                         '(build the generator with domain_kwargs)')
    t = affine1(d.to(torch.float32))
    t = 1 + (alpha * gain) * (t - 1)
    return styles * t


class AdaptiveInstanceNorm(torch.nn.Module):
    """AdaIN: instance-normalise x (N, C, H, W), then scale and shift by (gamma, beta) = style(s)."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.style = torch.nn.Linear(style_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1  # gamma starts at 1, beta at 0
            self.style.bias[channels:] = 0

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(s).unsqueeze(2).unsqueeze(3).chunk(2, dim=1)
        return gamma * torch.nn.functional.instance_norm(x, eps=1e-5) + beta


class ModResConv(torch.nn.Module):
    """3x3 convolution with equalised learning rate, bias and leaky ReLU (gain sqrt 2): (N, C, H, W) -> same."""

    def __init__(self, channels: int, zero_init: bool = False):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(channels, channels, 3, 3) if zero_init
                                         else torch.randn(channels, channels, 3, 3))
        self.bias = torch.nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1 / np.sqrt(channels * 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.conv2d(x, self.weight * self.weight_gain, padding=1)
        return torch.nn.functional.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * np.sqrt(2)


class ModRes(torch.nn.Module):
    """Modulative residual block: x (N, C, H, W), d (N, w_dim) -> x + alpha * R(x, d); a DAM module.

    R(x, d) = conv2(AdaIN2(conv(AdaIN(x, s)), s)) with s = affine(d). `conv2` starts at zero, so
    R = 0 until trained. Names (`conv`, `conv2`, `norm`, `norm2`, `affine`) follow the authors'
    release (their AdaResBlock); their release's forward differs (training.pstyle_compat.ReleaseModRes).
    """

    part_of_dam = True  # see is_dam_module

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.channels = channels
        self.affine = torch.nn.Linear(w_dim, w_dim)
        with torch.no_grad():
            self.affine.bias.fill_(1)
        self.norm = AdaptiveInstanceNorm(channels, w_dim)
        self.conv = ModResConv(channels)
        self.norm2 = AdaptiveInstanceNorm(channels, w_dim)
        self.conv2 = ModResConv(channels, zero_init=True)

    def residual(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """R(x, d) in float32: (N, C, H, W)."""
        s = self.affine(d.to(torch.float32))
        h = self.conv(self.norm(x.to(torch.float32), s))
        return self.conv2(self.norm2(h, s))

    def forward(self, x: torch.Tensor, d: Optional[torch.Tensor], alpha: float = 1) -> torch.Tensor:
        if d is None or alpha == 0:
            return x
        return x + (alpha * self.residual(x, d)).to(x.dtype)

    def extra_repr(self) -> str:
        return f'channels={self.channels}'


def check_alpha(alpha: float) -> float:
    """The domain strength: 0 = the natural face (exactly EG3D), 1 = the style, > 1 exaggerates."""
    alpha = float(alpha)
    if not np.isfinite(alpha):
        raise ValueError(f'alpha must be a finite number, got {alpha}')
    return alpha
