"""StyleGAN2 generator networks (EG3D's `networks_stylegan2`): synthesis blocks, synthesis network
and the generator that EG3D uses as its tri-plane backbone.

The layers live in `training.layers`, the mapping network in `training.mapping_network` and the
discriminator parts in `training.discriminator_blocks`; they are re-exported here so that every
EG3D name `training.networks_stylegan2.X` keeps working.
"""

import itertools
from typing import Optional, Sequence

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import upfirdn2d
from training.dam_layers import ModRes, rng_neutral
from training.discriminator_blocks import (Discriminator, DiscriminatorBlock, DiscriminatorEpilogue,
                                           MinibatchStdLayer)
from training.layers import (Conv2dLayer, FullyConnectedLayer, SynthesisLayer, ToRGBLayer,
                             modulated_conv2d, normalize_2nd_moment)
from training.mapping_network import MappingNetwork

__all__ = ['normalize_2nd_moment', 'modulated_conv2d', 'FullyConnectedLayer', 'Conv2dLayer', 'MappingNetwork',
           'SynthesisLayer', 'ToRGBLayer', 'SynthesisBlock', 'SynthesisNetwork', 'Generator', 'DiscriminatorBlock',
           'MinibatchStdLayer', 'DiscriminatorEpilogue', 'Discriminator']


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (2x upsampling) conv0, conv1, and a toRGB added to the
    (upsampled) running image. `up=1` gives EG3D's SynthesisBlockNoUp (same layers, same resolution)."""

    def __init__(self,
                 in_channels: int,                          # Input channels, 0 = first block (learned constant).
                 out_channels: int,
                 w_dim: int,
                 resolution: int,                           # Output resolution of this block.
                 img_channels: int,
                 is_last: bool,
                 architecture: str = 'skip',                # 'orig', 'skip' or 'resnet'.
                 resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: Optional[float] = 256,         # Clamp conv outputs to +-X, None = no clamp.
                 use_fp16: bool = False,                    # FP16 on CUDA (CPU always runs FP32).
                 fp16_channels_last: bool = False,
                 fused_modconv_default=True,                # True, False or 'inference_only' (= not training).
                 up: int = 2,                               # 2 = StyleGAN2 block, 1 = EG3D's no-upsampling block.
                 use_dam: bool = False,                     # Domain affine `affine1` in every modulated layer.
                 modres: bool = False,                      # ModRes blocks res0 / res1 after the convolutions.
                 **layer_kwargs):                           # Passed to SynthesisLayer.
        if architecture not in ('orig', 'skip', 'resnet'):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        if up not in (1, 2):
            raise ValueError(f'up must be 1 or 2, got {up!r}')
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.fused_modconv_default = fused_modconv_default
        self.up = up
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=up,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, use_dam=use_dam, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, use_dam=use_dam,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == 'skip':
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last, use_dam=use_dam)
            self.num_torgb += 1
        self.res0 = self.res1 = None  # the DAM's ModRes blocks, after conv0 / conv1
        if modres:
            with rng_neutral():
                if in_channels != 0:
                    self.res0 = ModRes(out_channels, w_dim)
                self.res1 = ModRes(out_channels, w_dim)
        if in_channels != 0 and architecture == 'resnet':
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=up,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor,
                force_fp32: bool = False, fused_modconv=None, update_emas: bool = False,
                domain_ws: Optional[torch.Tensor] = None, alpha: float = 1, **layer_kwargs):
        """x [N, in_channels, resolution/up, resolution/up] (None for the first block), img [N, img_channels,
        resolution/up, resolution/up] or None, ws [N, num_conv + num_torgb, w_dim]; domain_ws (same shape as
        ws) the per-layer domain code or None, alpha the domain strength.

        Returns (x [N, out_channels, resolution, resolution], img [N, img_channels, resolution, resolution] FP32).
        """
        _ = update_emas  # accepted for a uniform call signature
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], 'ws')
        w_iter = iter(ws.unbind(dim=1))
        if domain_ws is not None:
            misc.assert_shape(domain_ws, list(ws.shape), 'domain_ws')
        d_iter = iter(domain_ws.unbind(dim=1)) if domain_ws is not None else itertools.repeat(None)
        if ws.device.type != 'cuda':  # EG3D runs FP16 blocks in FP32 off the GPU
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = self._memory_format([x, ws, domain_ws], force_fp32)
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == 'inference_only':
            fused_modconv = not self.training

        in_resolution = self.resolution // self.up
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.contiguous(memory_format=memory_format)
        else:
            misc.assert_shape(x, [None, self.in_channels, in_resolution, in_resolution], 'x')
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            d = next(d_iter)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, d=d, alpha=alpha, **layer_kwargs)
            x = _modres(self.res1, x, d, alpha)
        elif self.architecture == 'resnet':
            y = self.skip(x, gain=np.sqrt(0.5))
            d = next(d_iter)
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, d=d, alpha=alpha, **layer_kwargs)
            x = _modres(self.res0, x, d, alpha)
            d = next(d_iter)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), d=d,
                           alpha=alpha, **layer_kwargs)
            x = y.add_(_modres(self.res1, x, d, alpha))
        else:
            d = next(d_iter)
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, d=d, alpha=alpha, **layer_kwargs)
            x = _modres(self.res0, x, d, alpha)
            d = next(d_iter)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, d=d, alpha=alpha, **layer_kwargs)
            x = _modres(self.res1, x, d, alpha)

        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, in_resolution, in_resolution], 'img')
            if self.up != 1:
                img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == 'skip':
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv, d=next(d_iter), alpha=alpha)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            # Out of place: without upsampling `img` may be the caller's render (image_raw).
            img = img + y if img is not None else y
        return x, img

    def _memory_format(self, inputs: Sequence[Optional[torch.Tensor]], force_fp32: bool) -> torch.memory_format:
        """Channels-last for CPU inference (no gradient to any of `inputs` or the parameters): oneDNN convolves
        NHWC activations as they are stored, where NCHW ones are copied into its blocked layout and back
        around every convolution."""
        inputs = [t for t in inputs if t is not None]
        if inputs[0].device.type == 'cpu' and not misc.needs_grad(*inputs, *self.parameters()):
            return torch.channels_last
        return torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

    def extra_repr(self) -> str:
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}, up={self.up}'


def _modres(block: Optional[ModRes], x: torch.Tensor, d: Optional[torch.Tensor], alpha: float) -> torch.Tensor:
    return x if block is None else block(x, d, alpha)


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, img_resolution, img_resolution), through
    one SynthesisBlock per resolution from 4x4 to img_resolution."""

    def __init__(self,
                 w_dim: int,
                 img_resolution: int,           # Output resolution, a power of two >= 4.
                 img_channels: int,
                 channel_base: int = 32768,     # Channels at resolution r: min(channel_base // r, channel_max).
                 channel_max: int = 512,
                 num_fp16_res: int = 4,         # FP16 (on CUDA) for this many highest resolutions.
                 use_dam: bool = False,         # Domain Adaptation Module (training.domain_adaptation) ...
                 modres_max_res: int = 0,       # ... with ModRes in the blocks up to this resolution.
                 **block_kwargs):               # Passed to SynthesisBlock.
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f'img_resolution must be a power of two >= 4, got {img_resolution}')
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 0
            is_last = (res == self.img_resolution)
            block = SynthesisBlock(in_channels, channels_dict[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_resolution),
                                   **block_kwargs, **self._dam_block_kwargs(res, use_dam, modres_max_res))
            # Consecutive blocks share a w: a block's toRGB uses the same w as the next block's conv0.
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f'b{res}', block)

    @staticmethod
    def _dam_block_kwargs(res: int, use_dam: bool, modres_max_res: int) -> dict:
        if not use_dam:
            return {}  # EG3D's exact blocks
        return dict(use_dam=True, modres=res <= modres_max_res)

    def forward(self, ws: torch.Tensor, domain_ws: Optional[torch.Tensor] = None, **block_kwargs) -> torch.Tensor:
        """ws (N, num_ws, w_dim); domain_ws (N, num_ws, w_dim) the DAM's per-layer domain code or None
        (block_kwargs may carry its strength `alpha`)."""
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim], 'ws')
        ws = ws.to(torch.float32)
        if domain_ws is not None:
            misc.assert_shape(domain_ws, list(ws.shape), 'domain_ws')
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            num = block.num_conv + block.num_torgb
            block_ws.append((ws.narrow(1, w_idx, num), None if domain_ws is None else domain_ws.narrow(1, w_idx, num)))
            w_idx += block.num_conv

        x = img = None
        for res, (cur_ws, cur_domain_ws) in zip(self.block_resolutions, block_ws):
            x, img = getattr(self, f'b{res}')(x, img, cur_ws, domain_ws=cur_domain_ws, **block_kwargs)
        return img

    def extra_repr(self) -> str:
        return (f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, '
                f'img_channels={self.img_channels:d}, num_fp16_res={self.num_fp16_res:d}')


@persistence.persistent_class
class Generator(torch.nn.Module):
    """StyleGAN2 generator = MappingNetwork + SynthesisNetwork (EG3D's tri-plane backbone)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict = {}, **synthesis_kwargs):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
