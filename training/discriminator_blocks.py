"""StyleGAN2 discriminator (EG3D's `networks_stylegan2` discriminator parts): residual downsampling
blocks, minibatch standard deviation, the 4x4 epilogue with projection conditioning, and the
label-conditioned Discriminator that EG3D's DualDiscriminator extends.
"""

from typing import Optional, Sequence

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import upfirdn2d
from training.layers import Conv2dLayer, FullyConnectedLayer
from training.mapping_network import MappingNetwork


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """One resolution: (fromRGB), conv0, conv1 with 2x downsampling, and a 1x1 residual skip."""

    def __init__(self,
                 in_channels: int,                  # Input channels, 0 = first block (reads the image).
                 tmp_channels: int,
                 out_channels: int,
                 resolution: int,                   # Input resolution of this block.
                 img_channels: int,
                 first_layer_idx: int,              # Index of this block's first layer (for Freeze-D).
                 architecture: str = 'resnet',      # 'orig', 'skip' or 'resnet'.
                 activation: str = 'lrelu',
                 resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: Optional[float] = None,
                 use_fp16: bool = False,            # FP16 on CUDA (CPU always runs FP32).
                 fp16_channels_last: bool = False,
                 freeze_layers: int = 0):           # Freeze-D: layers with index < this are not trained.
        if in_channels not in (0, tmp_channels):
            raise ValueError(f'in_channels must be 0 or tmp_channels ({tmp_channels}), got {in_channels}')
        if architecture not in ('orig', 'skip', 'resnet'):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(list(resample_filter)))

        self.num_layers = 0

        def trainable() -> bool:
            trainable = self.first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        if in_channels == 0 or architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp,
                                 channels_last=self.channels_last)
        if architecture == 'resnet':
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False):
        """x [N, in_channels, res, res] or None, img [N, img_channels, res, res] -> (x [N, out, res/2, res/2], img)."""
        if (x if x is not None else img).device.type != 'cuda':  # EG3D runs FP16 blocks in FP32 off the GPU
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], 'x')
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], 'img')
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None

        if self.architecture == 'resnet':
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}'


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Appends `num_channels` feature maps holding the feature standard deviation over groups of samples."""

    def __init__(self, group_size: Optional[int], num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, C + num_channels, H, W]; N must be a multiple of the group size."""
        N, C, H, W = x.shape
        with misc.suppress_tracer_warnings():
            G = torch.min(torch.as_tensor(self.group_size), torch.as_tensor(N)) if self.group_size is not None else N
        if N % int(G) != 0:
            raise ValueError(f'batch size {N} must be a multiple of the minibatch-std group size {int(G)}')
        F = self.num_channels
        c = C // F
        y = x.reshape(G, -1, F, c, H, W)   # [GnFcHW] groups of G samples, channels split in F parts
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [nFcHW] std over each group
        y = y.mean(dim=[2, 3, 4])          # [nF]
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [NFHW]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f'group_size={self.group_size}, num_channels={self.num_channels:d}'


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """4x4 head: minibatch std, conv, dense, output; with a label, the projection <out, cmap> / sqrt(cmap_dim)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = 'resnet', mbstd_group_size: Optional[int] = 4, mbstd_num_channels: int = 1,
                 activation: str = 'lrelu', conv_clamp: Optional[float] = None):
        if architecture not in ('orig', 'skip', 'resnet'):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * (resolution ** 2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor],
                force_fp32: bool = False) -> torch.Tensor:
        """x [N, in_channels, 4, 4], cmap [N, cmap_dim] -> logits [N, 1] (always FP32)."""
        _ = force_fp32  # the epilogue always runs in FP32
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], 'x')
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], 'img')
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            misc.assert_shape(cmap, [None, self.cmap_dim], 'cmap')
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}'


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """Label-conditioned StyleGAN2 discriminator: image (N, img_channels, R, R), c (N, c_dim) -> logits (N, 1)."""

    def __init__(self,
                 c_dim: int,
                 img_resolution: int,
                 img_channels: int,
                 architecture: str = 'resnet',
                 channel_base: int = 32768,             # Channels at resolution r: min(channel_base // r, channel_max).
                 channel_max: int = 512,
                 num_fp16_res: int = 4,                 # FP16 (on CUDA) for this many highest resolutions.
                 conv_clamp: Optional[float] = 256,
                 cmap_dim: Optional[int] = None,        # Mapped label size, None = channels at 4x4.
                 block_kwargs: dict = {},
                 mapping_kwargs: dict = {},
                 epilogue_kwargs: dict = {}):
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f'img_resolution must be a power of two >= 4, got {img_resolution}')
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels_dict[res], channels_dict[res // 2], resolution=res,
                                       first_layer_idx=cur_layer_idx, use_fp16=(res >= fp16_resolution),
                                       **block_kwargs, **common_kwargs)
            setattr(self, f'b{res}', block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels_dict[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs,
                                        **common_kwargs)

    def forward(self, img: torch.Tensor, c: torch.Tensor, update_emas: bool = False, **block_kwargs) -> torch.Tensor:
        _ = update_emas  # accepted for a uniform call signature
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f'c_dim={self.c_dim:d}, img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d}'
