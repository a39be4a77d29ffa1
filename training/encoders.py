"""Domain feature extractor: a pSp-style encoder from an exemplar portrait to a per-layer domain code.

Architecture (pSp's GradualStyleEncoder, as the PStyle-3D release uses it): an IR-SE-50 residual
backbone, a feature pyramid over its last three stages (coarse = 1/16 of the input resolution,
middle = 1/8, fine = 1/4), and one map-to-style head per w: strided convolutions down to 1x1 and a
linear layer. Optional source branch: a linear map of the natural face's latent w+ added to the
code, initialised to zero so it starts switched off.
"""

from typing import Optional, Sequence

import numpy as np
import torch

from torch_utils import persistence
from training.ir_se import DEFAULT_CHANNELS, IRBackbone, split_ir_se_state_dict
from training.pretrained_weights import load_pretrained_state

IR_SE50_FILENAME = 'model_ir_se50.pth'


class GradualStyleBlock(torch.nn.Module):
    """Map-to-style head: (N, in_channels, spatial, spatial) -> (N, out_features).

    max(1, log2(spatial)) stride-2 3x3 convolutions with leaky ReLU reach 1x1, then a linear layer.
    """

    def __init__(self, in_channels: int, channels: int, out_features: int, spatial: int):
        super().__init__()
        layers = []
        for idx in range(max(1, int(np.log2(spatial)))):
            layers += [torch.nn.Conv2d(in_channels if idx == 0 else channels, channels, 3, 2, 1),
                       torch.nn.LeakyReLU()]
        self.convs = torch.nn.Sequential(*layers)
        self.linear = torch.nn.Linear(channels, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


@persistence.persistent_class
class GradualStyleEncoder(IRBackbone):
    """Exemplar image -> domain code.

    forward(img, source_ws=None): img (N, 3, H, W) in [-1, 1] (resized to `img_resolution` when it
    differs); source_ws (N, num_ws, w_dim), the natural face's latent, used only with
    `source_branch=True`. Returns the domain code (N, num_ws, w_dim).

    The backbone's names follow `model_ir_se50.pth`; `load_ir_se_weights(path_or_url)` starts it
    from those weights as pSp does (not an init argument, so a snapshot rebuilt from its init
    kwargs never needs the file).
    """

    def __init__(self,
        num_ws: int,                                    # Number of per-layer codes (G.backbone.num_ws).
        w_dim: int = 512,                               # Width of each code.
        img_resolution: int = 256,                      # Input resolution of the encoder (power of 2, >= 16).
        num_layers: int = 50,                           # IR depth: 50, 100 or 152.
        mode: str = 'ir_se',                            # 'ir_se' (with squeeze-excitation) or 'ir'.
        channels: Sequence[int] = DEFAULT_CHANNELS,     # Stage widths; the default matches IR-SE-50 files.
        head_channels: Optional[int] = None,            # Width of the map-to-style convolutions, None = w_dim.
        coarse_ind: int = 3,                            # Codes [0, coarse_ind) come from the 1/16 features,
        middle_ind: int = 7,                            # [coarse_ind, middle_ind) from 1/8, the rest from 1/4.
        source_branch: bool = False,                    # Add a zero-initialised linear map of the natural w+.
    ):
        super().__init__(num_layers=num_layers, mode=mode, channels=channels)
        if img_resolution < 16 or img_resolution & (img_resolution - 1):
            raise ValueError(f'encoder img_resolution must be a power of 2 >= 16, got {img_resolution}')
        if not 0 < coarse_ind <= middle_ind <= num_ws:
            raise ValueError(f'need 0 < coarse_ind <= middle_ind <= num_ws, got {coarse_ind}, {middle_ind}, {num_ws}')
        self.num_ws = num_ws
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.coarse_ind = coarse_ind
        self.middle_ind = middle_ind
        head_channels = w_dim if head_channels is None else head_channels
        top = self.channels[3]
        self.styles = torch.nn.ModuleList()
        for idx in range(num_ws):
            level = 0 if idx < coarse_ind else 1 if idx < middle_ind else 2
            self.styles.append(GradualStyleBlock(top, head_channels, w_dim, spatial=img_resolution // (16 >> level)))
        self.latlayer1 = torch.nn.Conv2d(self.channels[2], top, 1)
        self.latlayer2 = torch.nn.Conv2d(self.channels[1], top, 1)
        self.source_proj = None
        if source_branch:
            self.source_proj = torch.nn.Linear(w_dim, w_dim)
            torch.nn.init.zeros_(self.source_proj.weight)
            torch.nn.init.zeros_(self.source_proj.bias)

    def load_ir_se_weights(self, weights: Optional[str]) -> None:
        """Initialise input layer and body from an IR-SE file (path or URL; None = the cache folder)."""
        state = load_pretrained_state(weights, what='domain encoder initialisation (IR-SE-50)',
                                      filename=IR_SE50_FILENAME, url_hint='the pSp release (model_ir_se50.pth)',
                                      allow_random_weights=False)
        backbone, _ = split_ir_se_state_dict(state)
        missing, unexpected = self.load_state_dict(backbone, strict=False)
        missing = [k for k in missing if k.startswith(('input_layer.', 'body.'))]
        if missing or unexpected:
            raise ValueError(f'IR-SE weights do not fit this encoder (num_layers={self.num_layers}, '
                             f'channels={self.channels}): missing {missing[:4]}, unexpected {unexpected[:4]}')

    @staticmethod
    def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=lateral.shape[2:], mode='bilinear', align_corners=True) + lateral

    def forward(self, img: torch.Tensor, source_ws: Optional[torch.Tensor] = None) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f'domain encoder input must be exemplar images (N, 3, H, W) in [-1, 1], '
                             f'got shape {tuple(img.shape)}')
        x = img.to(torch.float32)
        if x.shape[2:] != (self.img_resolution, self.img_resolution):
            x = torch.nn.functional.interpolate(x, size=(self.img_resolution, self.img_resolution), mode='bilinear',
                                                align_corners=False, antialias=True)
        _, c1, c2, c3 = super().forward(x)
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        levels = (c3, p2, p1)
        codes = [head(levels[0 if idx < self.coarse_ind else 1 if idx < self.middle_ind else 2])
                 for idx, head in enumerate(self.styles)]
        codes = torch.stack(codes, dim=1)
        if self.source_proj is not None:
            if source_ws is None:
                raise ValueError('this encoder has a source branch: pass source_ws, the natural face latent '
                                 f'(N, {self.num_ws}, {self.w_dim})')
            if source_ws.shape != codes.shape:
                raise ValueError(f'source_ws must be (N, {self.num_ws}, {self.w_dim}) with N = {codes.shape[0]}, '
                                 f'got {tuple(source_ws.shape)}')
            codes = codes + self.source_proj(source_ws.to(codes.dtype))
        return codes
