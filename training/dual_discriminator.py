"""EG3D's dual discriminator: judges the super-resolved image together with the neural render
(resized to the same resolution and stacked as 3 more channels), conditioned on the camera."""

from typing import Dict, Optional, Union

import torch

from camera_utils import CAMERA_LABEL_DIM, check_camera_label
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import upfirdn2d
from training.discriminator_blocks import Discriminator


def filtered_resizing(image_orig_tensor: torch.Tensor, size: int, f: Optional[torch.Tensor] = None,
                      filter_mode: Union[str, float] = 'antialiased') -> torch.Tensor:
    """Resize (N, C, H, W) to (N, C, size, size) the way EG3D does.

    filter_mode: 'antialiased' (bilinear with antialiasing, the default), 'classic' (FIR upsample,
    bilinear, FIR downsample with `f`, which only this mode needs), 'none' (plain bilinear) or a float
    in (0, 1) blending plain (weight 1 - x) and antialiased (weight x) bilinear.
    """
    def bilinear(x, out_size, antialias):
        return torch.nn.functional.interpolate(x, size=(out_size, out_size), mode='bilinear', align_corners=False,
                                               antialias=antialias)

    if filter_mode == 'antialiased':
        return bilinear(image_orig_tensor, size, True)
    if filter_mode == 'classic':
        if f is None:
            raise ValueError("filter_mode='classic' needs the resampling filter f")
        x = upfirdn2d.upsample2d(image_orig_tensor, f, up=2)
        x = bilinear(x, size * 2 + 2, False)
        return upfirdn2d.downsample2d(x, f, down=2, flip_filter=True, padding=-1)
    if filter_mode == 'none':
        return bilinear(image_orig_tensor, size, False)
    if isinstance(filter_mode, float) and 0 < filter_mode < 1:
        return (1 - filter_mode) * bilinear(image_orig_tensor, size, False) + \
            filter_mode * bilinear(image_orig_tensor, size, True)
    raise ValueError(f"filter_mode must be 'antialiased', 'classic', 'none' or a float in (0, 1), got {filter_mode!r}")


@persistence.persistent_class
class SingleDiscriminator(Discriminator):
    """EG3D's SingleDiscriminator: D({'image': (N, C, R, R), ...}, c) judging the final image alone."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, sr_upsample_factor: int = 1, **kwargs):
        _ = sr_upsample_factor  # accepted and ignored, as in EG3D
        super().__init__(c_dim, img_resolution, img_channels, **kwargs)

    def forward(self, img: Dict[str, torch.Tensor], c: torch.Tensor, update_emas: bool = False,
                **block_kwargs) -> torch.Tensor:
        if not isinstance(img, dict) or 'image' not in img:
            raise ValueError("D expects a dict with 'image' (N, C, R, R)")
        misc.assert_shape(img['image'], [None, self.img_channels, self.img_resolution, self.img_resolution],
                          "img['image']")
        return super().forward(img['image'], c, update_emas=update_emas, **block_kwargs)


@persistence.persistent_class
class DualDiscriminator(Discriminator):
    """D({'image': (N, C, R, R), 'image_raw': (N, C, r, r)}, c (N, 25)) -> logits (N, 1).

    Arguments as for `Discriminator` (img_channels counts one image; the network sees twice as many),
    plus `disc_c_noise`: Gaussian noise on the camera label, in units of its per-feature batch std.
    """

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = 'resnet',
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 4,
                 conv_clamp: Optional[float] = 256, cmap_dim: Optional[int] = None, disc_c_noise: float = 0,
                 block_kwargs: dict = {}, mapping_kwargs: dict = {}, epilogue_kwargs: dict = {}):
        super().__init__(c_dim, img_resolution, img_channels * 2, architecture=architecture,
                         channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
                         conv_clamp=conv_clamp, cmap_dim=cmap_dim, block_kwargs=block_kwargs,
                         mapping_kwargs=mapping_kwargs, epilogue_kwargs=epilogue_kwargs)
        self.register_buffer('resample_filter', upfirdn2d.setup_filter([1, 3, 3, 1]))
        self.disc_c_noise = disc_c_noise

    def forward(self, img: Dict[str, torch.Tensor], c: torch.Tensor, update_emas: bool = False,
                **block_kwargs) -> torch.Tensor:
        channels = self.img_channels // 2
        if not isinstance(img, dict) or 'image' not in img or 'image_raw' not in img:
            raise ValueError("D expects a dict with 'image' (N, C, R, R) and 'image_raw' (N, C, r, r)")
        image, image_raw = img['image'], img['image_raw']
        misc.assert_shape(image, [None, channels, self.img_resolution, self.img_resolution], "img['image']")
        misc.assert_shape(image_raw, [image.shape[0], channels, None, image_raw.shape[-2]], "img['image_raw']")
        if self.c_dim == CAMERA_LABEL_DIM:
            check_camera_label(c, image.shape[0])
        else:
            misc.assert_shape(c, [image.shape[0], self.c_dim], 'conditioning label c')

        image_raw = filtered_resizing(image_raw, size=image.shape[-1], f=self.resample_filter)
        stacked = torch.cat([image, image_raw], 1)
        if self.c_dim > 0 and self.disc_c_noise > 0:
            c = c + torch.randn_like(c) * c.std(0) * self.disc_c_noise
        return super().forward(stacked, c, update_emas=update_emas, **block_kwargs)
