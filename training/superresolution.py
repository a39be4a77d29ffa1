"""EG3D's super-resolution modules: the neural render (32-channel feature image, first 3 = RGB) is
resized to the module's input resolution and refined by two StyleGAN2 synthesis blocks driven by
the last w. One parameterised class; EG3D's four names are thin aliases with its exact layouts, so
their state-dict keys are EG3D's.
"""

from typing import Optional, Sequence

import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import upfirdn2d
from training.networks_stylegan2 import SynthesisBlock


@persistence.persistent_class
class SynthesisBlockNoUp(SynthesisBlock):
    """EG3D's SynthesisBlockNoUp: a SynthesisBlock that keeps the resolution (no upsampling)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, up=1, **kwargs)


@persistence.persistent_class
class SuperresolutionHybrid(torch.nn.Module):
    """Two synthesis blocks (block0, block1) from `input_resolution` to `img_resolution`.

    `block_channels` = (block0 out, block1 out); block0 upsamples 2x unless `block0_up` is False.
    `sr_num_fp16_res > 0` makes both blocks FP16 on CUDA and clamps their convolutions to +-256 on
    every device (EG3D ties the clamp to FP16). Arguments EG3D accepts and ignores (num_fp16_res,
    conv_clamp, channel_base, channel_max) are accepted and ignored here too.
    """

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 input_resolution: int = 128, block_channels: Sequence[int] = (128, 64), block0_up: bool = True,
                 has_resample_filter: bool = True, num_fp16_res: int = 4, conv_clamp=None, channel_base=None,
                 channel_max=None, **block_kwargs):
        super().__init__()
        _ = num_fp16_res, conv_clamp, channel_base, channel_max  # EG3D ignores these, so do we
        expected = input_resolution * (4 if block0_up else 2)
        if img_resolution != expected:
            raise ValueError(f'{type(self).__name__} produces {expected}x{expected} images, '
                             f'got img_resolution={img_resolution}')
        use_fp16 = sr_num_fp16_res > 0
        clamp = 256 if use_fp16 else None
        self.input_resolution = input_resolution
        self.sr_antialias = sr_antialias
        mid_resolution = img_resolution // 2
        block0_class = SynthesisBlock if block0_up else SynthesisBlockNoUp
        self.block0 = block0_class(channels, block_channels[0], w_dim=512, resolution=mid_resolution,
                                   img_channels=3, is_last=False, use_fp16=use_fp16, conv_clamp=clamp, **block_kwargs)
        self.block1 = SynthesisBlock(block_channels[0], block_channels[1], w_dim=512, resolution=img_resolution,
                                     img_channels=3, is_last=True, use_fp16=use_fp16, conv_clamp=clamp, **block_kwargs)
        if has_resample_filter:  # unused; registered where EG3D has it so that state dicts match
            self.register_buffer('resample_filter', upfirdn2d.setup_filter([1, 3, 3, 1]))

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, domain_ws: Optional[torch.Tensor] = None,
                **block_kwargs) -> torch.Tensor:
        """rgb (N, 3, r, r) and features x (N, channels, r, r) of the neural render; ws (N, num_ws, 512),
        of which only the last w is used, and likewise the DAM's domain code domain_ws (same shape, or None).
        Returns the image (N, 3, img_resolution, img_resolution)."""
        misc.assert_shape(ws, [x.shape[0], None, 512], 'ws')
        misc.assert_shape(rgb, [x.shape[0], 3, x.shape[2], x.shape[3]], 'rgb')
        styles_ws = ws[:, -1:, :].repeat(1, 3, 1)
        block_kwargs['domain_ws'] = None if domain_ws is None else domain_ws[:, -1:, :].repeat(1, 3, 1)
        if x.shape[-1] != self.input_resolution:
            size = (self.input_resolution, self.input_resolution)
            x = torch.nn.functional.interpolate(x, size=size, mode='bilinear', align_corners=False,
                                                antialias=self.sr_antialias)
            rgb = torch.nn.functional.interpolate(rgb, size=size, mode='bilinear', align_corners=False,
                                                  antialias=self.sr_antialias)
        x, rgb = self.block0(x, rgb, styles_ws, **block_kwargs)
        x, rgb = self.block1(x, rgb, styles_ws, **block_kwargs)
        return rgb


@persistence.persistent_class
class SuperresolutionHybrid2X(SuperresolutionHybrid):
    """64 -> 128 (block0 without upsampling: 128 channels at 64, block1: 64 channels at 128)."""

    def __init__(self, channels, img_resolution, sr_num_fp16_res, sr_antialias, **kwargs):
        super().__init__(channels, img_resolution, sr_num_fp16_res, sr_antialias, input_resolution=64,
                         block_channels=(128, 64), block0_up=False, **kwargs)


@persistence.persistent_class
class SuperresolutionHybrid4X(SuperresolutionHybrid):
    """128 -> 256 (block0 without upsampling: 128 channels at 128, block1: 64 channels at 256)."""

    def __init__(self, channels, img_resolution, sr_num_fp16_res, sr_antialias, **kwargs):
        super().__init__(channels, img_resolution, sr_num_fp16_res, sr_antialias, input_resolution=128,
                         block_channels=(128, 64), block0_up=False, **kwargs)


@persistence.persistent_class
class SuperresolutionHybrid8X(SuperresolutionHybrid):
    """128 -> 512 (block0: 128 channels at 256, block1: 64 channels at 512)."""

    def __init__(self, channels, img_resolution, sr_num_fp16_res, sr_antialias, **kwargs):
        super().__init__(channels, img_resolution, sr_num_fp16_res, sr_antialias, input_resolution=128,
                         block_channels=(128, 64), **kwargs)


@persistence.persistent_class
class SuperresolutionHybrid8XDC(SuperresolutionHybrid):
    """128 -> 512 with doubled channels (block0: 256 at 256, block1: 128 at 512); the FFHQ 512 model's."""

    def __init__(self, channels, img_resolution, sr_num_fp16_res, sr_antialias, **kwargs):
        super().__init__(channels, img_resolution, sr_num_fp16_res, sr_antialias, input_resolution=128,
                         block_channels=(256, 128), has_resample_filter=False, **kwargs)


@persistence.persistent_class
class SuperresolutionHybridDeepfp32(SuperresolutionHybrid):
    """EG3D's legacy 128 -> 256 module of early 256x256 models: the 4X layout, resizing without antialiasing."""

    def __init__(self, channels, img_resolution, sr_num_fp16_res, **kwargs):
        super().__init__(channels, img_resolution, sr_num_fp16_res, sr_antialias=False, input_resolution=128,
                         block_channels=(128, 64), block0_up=False, **kwargs)
