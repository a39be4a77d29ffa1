"""StyleGAN2 building layers (EG3D's `networks_stylegan2` layers): equalised-learning-rate dense and
convolution layers, weight-modulated convolution, and the modulated synthesis / toRGB layers.

Every modulated layer turns its w into a per-input-channel style in exactly one place
(`styles = self.affine(w)`, S space); the domain adaptation module hooks in there.
"""

from typing import Optional, Sequence

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_resample
from torch_utils.ops import fma
from torch_utils.ops import upfirdn2d
from training.dam_layers import apply_domain_modulation, init_domain_affine_, rng_neutral


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale x so that its mean square along `dim` is 1 (pixel norm of latents and embeddings)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,                                # [N, I, H, W] input activations.
    weight: torch.Tensor,                           # [O, I, kh, kw] shared convolution weight.
    styles: torch.Tensor,                           # [N, I] per-sample input-channel scales.
    noise: Optional[torch.Tensor] = None,           # Added to the output (broadcastable to [N, O, H', W']).
    up: int = 1,                                    # Upsampling factor.
    down: int = 1,                                  # Downsampling factor.
    padding: int = 0,                               # Padding, relative to the upsampled image.
    resample_filter: Optional[torch.Tensor] = None,  # From upfirdn2d.setup_filter(), used when resampling.
    demodulate: bool = True,                        # Normalise every output channel's weights to unit norm?
    flip_weight: bool = True,                       # True = correlation (like F.conv2d), False = convolution.
    fused_modconv: bool = True,                     # One grouped convolution with per-sample weights?
) -> torch.Tensor:
    """StyleGAN2's weight modulation / demodulation. Returns [N, O, H', W'].

    Fused: the per-sample weights w[n] = weight * styles[n] (demodulated) run as one grouped
    convolution. Not fused: the input is scaled by the styles, convolved with the shared weight, and
    the output scaled by the demodulation coefficients (mathematically the same, cheaper for training).
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw], 'weight')  # [OIkk]
    misc.assert_shape(x, [batch_size, in_channels, None, None], 'x')  # [NIHW]
    misc.assert_shape(styles, [batch_size, in_channels], 'styles')  # [NI]

    # FP16 only: scale weights and styles to at most 1 first, demodulation removes the scale again.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [NOIkk]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [NO]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), f=resample_filter, up=up, down=down,
                                            padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return fma.fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    if misc.is_channels_last(x):
        x = _fused_channels_last(x, w.to(x.dtype), resample_filter, up, down, padding, flip_weight)
    else:
        # Fused: fold the batch into the channels, one group per sample.
        with misc.suppress_tracer_warnings():
            batch_size = int(batch_size)
        x = x.reshape(1, -1, *x.shape[2:])
        w = w.reshape(-1, in_channels, kh, kw)
        x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=resample_filter, up=up, down=down,
                                            padding=padding, groups=batch_size, flip_weight=flip_weight)
        x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


def _fused_channels_last(x: torch.Tensor, w: torch.Tensor, resample_filter: Optional[torch.Tensor], up: int,
                         down: int, padding: int, flip_weight: bool) -> torch.Tensor:
    """Fused modulated convolution of channels-last (NHWC) x [N, I, H, W] with per-sample weights w [N, O, I, kh, kw].

    NHWC cannot fold the batch into the channels without copying x, so every sample is its own
    convolution (channels-last out). A 1x1 kernel without resampling (toRGB) is a matrix product of the
    (H*W, I) pixel matrix instead, whose result is NCHW, the layout of the image it is added to.
    """
    batch_size, out_channels, in_channels, kh, kw = w.shape
    if kh == 1 and kw == 1 and up == 1 and down == 1 and padding == 0:
        pixels = x.permute(0, 2, 3, 1).reshape(batch_size, -1, in_channels)  # [N, H*W, I], a view of NHWC memory
        return torch.bmm(w.reshape(batch_size, out_channels, in_channels), pixels.transpose(1, 2)).reshape(
            batch_size, out_channels, *x.shape[2:])
    samples = [conv2d_resample.conv2d_resample(x=x[n:n + 1], w=w[n], f=resample_filter, up=up, down=down,
                                               padding=padding, flip_weight=flip_weight) for n in range(batch_size)]
    return samples[0] if batch_size == 1 else torch.cat(samples)


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate: weights stored as N(0, 1/lr_multiplier^2), scaled at run time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = 'linear',
                 lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in_features] -> [..., out_features]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}'


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Convolution with equalised learning rate, optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = 'linear', up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:  # frozen layers (Freeze-D) keep their tensors as buffers so they still load and save
            self.register_buffer('weight', weight)
            if bias is not None:
                self.register_buffer('bias', bias)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """x [N, in_channels, H, W] -> [N, out_channels, H*up/down, W*up/down]."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = (self.up == 1)  # correlation is faster; the transposed path needs a true convolution
        x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=self.resample_filter, up=self.up,
                                            down=self.down, padding=self.padding, flip_weight=flip_weight)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, '
                f'activation={self.activation:s}, up={self.up}, down={self.down}')


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally 2x upsampling) + per-pixel noise + bias + activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = 'lrelu',
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False, use_dam: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.affine1 = None  # the DAM's domain affine (training.domain_adaptation)
        if use_dam:
            with rng_neutral():
                self.affine1 = init_domain_affine_(FullyConnectedLayer(w_dim, in_channels, bias_init=1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = 'random', fused_modconv: bool = True,
                gain: float = 1, d: Optional[torch.Tensor] = None, alpha: float = 1) -> torch.Tensor:
        """x [N, in_channels, resolution/up, resolution/up], w [N, w_dim] -> [N, out_channels, resolution, resolution].

        noise_mode: 'random' (fresh noise), 'const' (the stored noise_const) or 'none'.
        d [N, w_dim]: domain code of this layer (None = plain EG3D); alpha: domain strength.
        """
        if noise_mode not in ('random', 'const', 'none'):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        in_resolution = self.resolution // self.up
        misc.assert_shape(x, [None, self.in_channels, in_resolution, in_resolution], 'x')
        styles = apply_domain_modulation(self.affine(w), self.affine1, d, alpha)

        noise = None
        if self.use_noise and noise_mode == 'random':
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        if self.use_noise and noise_mode == 'const':
            noise = self.noise_const * self.noise_strength

        flip_weight = (self.up == 1)
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=flip_weight, fused_modconv=fused_modconv)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # CPU inference: x is this layer's fresh convolution output, so finish it in place (one fewer
        # activation alive at once; the compiled op would allocate its output).
        if x.device.type == 'cpu' and self.activation in ('linear', 'lrelu') and not misc.needs_grad(x, self.bias):
            return bias_act.bias_act_inplace_(x, self.bias, self.activation, act_gain, act_clamp)
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}, '
                f'resolution={self.resolution:d}, up={self.up}, activation={self.activation:s}')


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated (not demodulated) 1x1 convolution to output channels, + bias, optional clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None, channels_last: bool = False, use_dam: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.affine1 = None  # the DAM's domain affine (training.domain_adaptation)
        if use_dam:
            with rng_neutral():
                self.affine1 = init_domain_affine_(FullyConnectedLayer(w_dim, in_channels, bias_init=1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True,
                d: Optional[torch.Tensor] = None, alpha: float = 1) -> torch.Tensor:
        """x [N, in_channels, H, W], w [N, w_dim] -> [N, out_channels, H, W]; d [N, w_dim] domain code or None."""
        styles = self.affine(w) * self.weight_gain  # no demodulation, so the equalised-lr gain goes here
        styles = apply_domain_modulation(styles, self.affine1, d, alpha, gain=self.weight_gain)
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}'
