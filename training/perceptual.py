"""Frozen perceptual networks for the style-adaptation losses (DESIGN.md section 4).

- `VGG19Features`: VGG-19 activations by name (`relu1_1` ... `relu5_1`) for the content loss
  (relu4_1) and the AdaIN style loss (relu1_1..relu4_1). Weights: torchvision's ImageNet file
  `vgg19-dcbb9e9d.pth` (its `features.<i>` keys load as is).
- `IdentityEncoder`: ArcFace IR-SE-50 face embedding (N, 512), unit length, for the identity
  loss. Weights: `model_ir_se50.pth` (the file pSp / e4e use).

Both take images in the generator's range [-1, 1] and stay frozen (no parameter gradients, eval
mode), while gradients still flow to the input image. Weights come from a path or URL; see
`training.pretrained_weights` for the search order and the error raised when they are missing.
"""

from typing import Dict, Optional, Sequence

import torch

from torch_utils import persistence
from training.ir_se import IRBackbone
from training.pretrained_weights import load_pretrained_state

VGG19_FILENAME = 'vgg19-dcbb9e9d.pth'
VGG19_URL = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'
IR_SE50_FILENAME = 'model_ir_se50.pth'
IR_SE50_URL = 'the pSp release, https://github.com/eladrich/pixel2style2pixel#pretrained-models'

# VGG-19 ('E') feature stack: conv widths per block, a 2x2 max-pool after each block.
_VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_layer_names():
    """Yield (kind, name) for each entry of torchvision's `vgg19().features`, in order."""
    for block_idx, widths in enumerate(_VGG19_BLOCKS):
        for conv_idx, _ in enumerate(widths):
            yield 'conv', f'conv{block_idx + 1}_{conv_idx + 1}'
            yield 'relu', f'relu{block_idx + 1}_{conv_idx + 1}'
        yield 'pool', f'pool{block_idx + 1}'


VGG19_RELU_LAYERS = tuple(name for kind, name in _vgg19_layer_names() if kind == 'relu')


def _check_images(img: torch.Tensor, what: str) -> None:
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f'{what} input must be RGB images (N, 3, H, W) in [-1, 1], got shape {tuple(img.shape)}')


@persistence.persistent_class
class VGG19Features(torch.nn.Module):
    """VGG-19 activations at named ReLU layers.

    forward(img) with img (N, 3, H, W) in [-1, 1] returns {name: (N, C, H', W')} for each name in
    `layers` (relu<b>_<k> has C = 64, 128, 256, 512, 512 for b = 1..5 and H' = H / 2**(b-1)).
    Only the layers up to the deepest requested one are built and run.
    """

    def __init__(self, weights: Optional[str] = None, allow_random_weights: bool = False,
                 layers: Sequence[str] = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1')):
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in VGG19_RELU_LAYERS]
        if not layers or unknown:
            raise ValueError(f'VGG19Features layers must be a non-empty subset of {VGG19_RELU_LAYERS}, got {layers}')
        self.layers = layers
        self.layer_index: Dict[str, int] = {}  # relu name -> index in `features`
        deepest = max(layers, key=VGG19_RELU_LAYERS.index)
        modules = []
        in_channels = 3
        widths = iter(w for block in _VGG19_BLOCKS for w in block)
        for kind, name in _vgg19_layer_names():
            if kind == 'conv':
                out_channels = next(widths)
                modules.append(torch.nn.Conv2d(in_channels, out_channels, 3, padding=1))
                in_channels = out_channels
            elif kind == 'relu':
                self.layer_index[name] = len(modules)
                modules.append(torch.nn.ReLU())
            else:
                modules.append(torch.nn.MaxPool2d(2, 2))
            if name == deepest:
                break
        self.features = torch.nn.Sequential(*modules)  # torchvision's module name and indices
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        state = load_pretrained_state(weights, what='VGG-19 (content and style losses)', filename=VGG19_FILENAME,
                                      url_hint=VGG19_URL, allow_random_weights=allow_random_weights)
        if state is None:
            # Random stand-ins: He initialisation keeps the feature scale through the ReLU stack. With
            # PyTorch's default init relu4_1 shrinks about 300x and the content loss on it to ~1e-8.
            for module in self.features:
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity='relu')
                    torch.nn.init.zeros_(module.bias)
        else:
            # The file also holds deeper layers and the classifier; keep what this stack uses.
            own = self.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise ValueError(f'VGG-19 weights lack {missing[:4]}...: expected torchvision\'s vgg19 layout '
                                 f'("features.<i>.weight"), as in {VGG19_FILENAME}')
            self.load_state_dict({k: state[k] for k in own})
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> 'VGG19Features':
        """A frozen network: stays in eval mode whatever the caller asks."""
        return super().train(False)

    def forward(self, img: torch.Tensor) -> Dict[str, torch.Tensor]:
        _check_images(img, 'VGG19Features')
        x = ((img.to(torch.float32) + 1) / 2 - self.mean) / self.std  # [-1, 1] -> ImageNet normalisation
        wanted = {self.layer_index[name]: name for name in self.layers}
        out = {}
        for idx, module in enumerate(self.features):
            x = module(x)
            if idx in wanted:
                out[wanted[idx]] = x
        return out


@persistence.persistent_class
class IdentityEncoder(IRBackbone):
    """ArcFace IR-SE-50 face-recognition embedding.

    forward(img) with img (N, 3, H, W) in [-1, 1], an aligned portrait as EG3D renders it:
    crops the face region (rows 35..223, columns 32..220 of a 256 image, scaled to H x W, as pSp's
    identity loss does), pools to 112 x 112 and returns (N, 512) embeddings of unit length.
    The identity loss is 1 - <e(a), e(b)>.
    """

    CROP = (35 / 256, 223 / 256, 32 / 256, 220 / 256)  # top, bottom, left, right as fractions of H / W

    def __init__(self, weights: Optional[str] = None, allow_random_weights: bool = False, num_layers: int = 50,
                 mode: str = 'ir_se'):
        super().__init__(num_layers=num_layers, mode=mode)
        self.face_pool = torch.nn.AdaptiveAvgPool2d((112, 112))
        self.output_layer = torch.nn.Sequential(
            torch.nn.BatchNorm2d(512),
            torch.nn.Dropout(0.6),
            torch.nn.Flatten(),
            torch.nn.Linear(512 * 7 * 7, 512),
            torch.nn.BatchNorm1d(512))
        state = load_pretrained_state(weights, what='ArcFace IR-SE-50 (identity loss)', filename=IR_SE50_FILENAME,
                                      url_hint=IR_SE50_URL, allow_random_weights=allow_random_weights)
        if state is not None:
            self.load_state_dict(state)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> 'IdentityEncoder':
        """A frozen network: stays in eval mode (batch-norm statistics, no dropout)."""
        return super().train(False)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        _check_images(img, 'IdentityEncoder')
        h, w = img.shape[2:]
        top, bottom, left, right = self.CROP
        x = img.to(torch.float32)[:, :, round(top * h):round(bottom * h), round(left * w):round(right * w)]
        x = self.face_pool(x)
        x = super().forward(x)[-1]
        x = self.output_layer(x)
        return torch.nn.functional.normalize(x, dim=1)
