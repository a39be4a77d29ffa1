"""IR / IR-SE residual networks (the ArcFace face-recognition backbone family).

One architecture shared by two users: the identity embedding of the perceptual losses
(`training.perceptual.IdentityEncoder`, ArcFace IR-SE-50) and the pSp-style domain encoder
(`training.encoders.GradualStyleEncoder`), which starts from the same IR-SE-50 weights.
Module names (`input_layer`, `body.<i>.shortcut_layer`, `body.<i>.res_layer.<j>`,
`res_layer.5.fc1`) follow the public `model_ir_se50.pth` file, so its state dict loads as is.
"""

from typing import List, Sequence, Tuple

import torch

# Units per stage for the supported depths (the ArcFace / pSp configurations).
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
DEFAULT_CHANNELS = (64, 128, 256, 512)


class SEModule(torch.nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from the global average."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.relu = torch.nn.ReLU(inplace=True)
        self.fc2 = torch.nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)
        self.sigmoid = torch.nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIR(torch.nn.Module):
    """One improved-residual unit: BN-conv-PReLU-conv-BN (+ SE), plus a (strided) shortcut.

    (N, in_channels, H, W) -> (N, depth, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, depth: int, stride: int, use_se: bool):
        super().__init__()
        if in_channels == depth:
            # A 1x1 max-pool is a parameter-free strided identity.
            self.shortcut_layer = torch.nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                torch.nn.BatchNorm2d(depth))
        layers = [
            torch.nn.BatchNorm2d(in_channels),
            torch.nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            torch.nn.PReLU(depth),
            torch.nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            torch.nn.BatchNorm2d(depth),
        ]
        if use_se:
            layers.append(SEModule(depth, 16))
        self.res_layer = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(torch.nn.Module):
    """Input layer + four stages of residual units, each stage halving the resolution.

    forward(x) with x (N, 3, H, W) returns the list of the four stage outputs,
    (N, channels[k], H / 2**(k+1), W / 2**(k+1)) for k = 0..3.
    """

    def __init__(self, num_layers: int = 50, mode: str = 'ir_se', channels: Sequence[int] = DEFAULT_CHANNELS):
        super().__init__()
        if num_layers not in STAGE_UNITS:
            raise ValueError(f'num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}')
        if mode not in ('ir', 'ir_se'):
            raise ValueError(f'mode must be "ir" or "ir_se", got "{mode}"')
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4 or any(c < 16 or c % 16 for c in channels):
            raise ValueError(f'channels must be 4 stage widths, multiples of 16 (the SE reduction); got {channels}')
        self.num_layers = num_layers
        self.mode = mode
        self.channels = channels
        self.input_layer = torch.nn.Sequential(
            torch.nn.Conv2d(3, channels[0], 3, 1, 1, bias=False),
            torch.nn.BatchNorm2d(channels[0]),
            torch.nn.PReLU(channels[0]))
        units = []
        self.stage_ends: List[int] = []  # index in `body` of each stage's last unit
        in_channels = channels[0]
        for depth, num_units in zip(channels, STAGE_UNITS[num_layers]):
            for unit_idx in range(num_units):
                units.append(BottleneckIR(in_channels, depth, 2 if unit_idx == 0 else 1, use_se=(mode == 'ir_se')))
                in_channels = depth
            self.stage_ends.append(len(units) - 1)
        self.body = torch.nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'IR backbone input must be images (N, 3, H, W), got shape {tuple(x.shape)}')
        x = self.input_layer(x)
        stages = []
        for idx, unit in enumerate(self.body):
            x = unit(x)
            if idx in self.stage_ends:
                stages.append(x)
        return stages


def split_ir_se_state_dict(state: dict) -> Tuple[dict, dict]:
    """Split a `model_ir_se50.pth`-style state dict into (backbone part, everything else)."""
    backbone = {k: v for k, v in state.items() if k.startswith(('input_layer.', 'body.'))}
    rest = {k: v for k, v in state.items() if k not in backbone}
    return backbone, rest
