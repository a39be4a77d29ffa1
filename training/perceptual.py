"""Frozen perceptual networks: for the style-adaptation losses, perceptual distances and metrics.

- `VGGFeatures`: VGG-16 / VGG-19 activations by name (`relu1_1` ... `relu5_x`, `fc6`, `fc7`).
  `VGG19Features` feeds the content loss (relu4_1) and the AdaIN style loss (relu1_1..relu4_1);
  VGG-16 serves perceptual distances and feature embeddings. Weights: torchvision's ImageNet files
  `vgg19-dcbb9e9d.pth` / `vgg16-397923af.pth` (their `features.<i>` / `classifier.<i>` keys load as is).
- `LPIPS`: the LPIPS v0.1 perceptual distance on VGG-16 (projection and pivotal tuning).
- `IdentityEncoder`: ArcFace IR-SE-50 face embedding (N, 512), unit length, for the identity
  loss. Weights: `model_ir_se50.pth` (the file pSp / e4e use).

All take images in the generator's range [-1, 1] and stay frozen (no parameter gradients, eval
mode), while gradients still flow to the input image. Weights come from a path or URL; see
`training.pretrained_weights` for the search order and the error raised when they are missing.
"""

import os
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from dnnlib import cli, util
from torch_utils import persistence
from training.ir_se import IRBackbone
from training.pretrained_weights import load_pretrained_state

VGG_WEIGHTS = {  # arch -> (torchvision's ImageNet file, its public URL)
    'vgg16': ('vgg16-397923af.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth'),
    'vgg19': ('vgg19-dcbb9e9d.pth', 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'),
}
VGG16_FILENAME, VGG16_URL = VGG_WEIGHTS['vgg16']
VGG19_FILENAME, VGG19_URL = VGG_WEIGHTS['vgg19']
IR_SE50_FILENAME = 'model_ir_se50.pth'
IR_SE50_URL = 'the pSp release, https://github.com/eladrich/pixel2style2pixel#pretrained-models'

# Conv widths per block ('D' = VGG-16, 'E' = VGG-19), a 2x2 max-pool after each block.
_VGG_BLOCKS = {
    'vgg16': ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    'vgg19': ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}
# The classifier's hidden layers (torchvision's classifier.0 and classifier.3, each followed by a ReLU):
# fc7 is the 4096-d embedding the precision/recall metric uses.
VGG_CLASSIFIER_LAYERS = ('fc6', 'fc7')
_CLASSIFIER_POOL = 7  # torchvision pools the last feature map to 7 x 7 before the classifier
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_layer_names(arch: str):
    """Yield (kind, name) for each entry of torchvision's `<arch>().features`, in order."""
    for block_idx, widths in enumerate(_VGG_BLOCKS[arch]):
        for conv_idx, _ in enumerate(widths):
            yield 'conv', f'conv{block_idx + 1}_{conv_idx + 1}'
            yield 'relu', f'relu{block_idx + 1}_{conv_idx + 1}'
        yield 'pool', f'pool{block_idx + 1}'


def vgg_output_layers(arch: str) -> Tuple[str, ...]:
    """Names VGGFeatures(arch) can return, shallow to deep: every ReLU of `features`, then fc6, fc7."""
    if arch not in _VGG_BLOCKS:
        raise ValueError(f'unknown VGG architecture "{arch}": expected one of {sorted(_VGG_BLOCKS)}')
    return tuple(name for kind, name in _vgg_layer_names(arch) if kind == 'relu') + VGG_CLASSIFIER_LAYERS


VGG19_RELU_LAYERS = vgg_output_layers('vgg19')[:-len(VGG_CLASSIFIER_LAYERS)]


def _check_images(img: torch.Tensor, what: str) -> None:
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f'{what} input must be RGB images (N, 3, H, W) in [-1, 1], got shape {tuple(img.shape)}')


def _stay_in_eval(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    """`train` of a frozen network: eval mode (batch-norm statistics, no dropout) whatever the caller asks."""
    return torch.nn.Module.train(self, False)


@persistence.persistent_class
class VGGFeatures(torch.nn.Module):
    """VGG-16 or VGG-19 activations at named layers.

    forward(img) with img (N, 3, H, W) in [-1, 1] returns {name: activation} for each name in
    `layers`: relu<b>_<k> is (N, C, H / 2**(b-1), W / 2**(b-1)) with C = 64, 128, 256, 512, 512 for
    b = 1..5; fc6 and fc7 are (N, 4096) after their ReLU (the last feature map average-pooled to
    7 x 7 first, as torchvision does; H, W >= 32). Only the layers up to the deepest requested one
    are built and run. `forward_normalized` takes input already in the network's normalised space,
    for callers with their own input scaling (LPIPS).
    """

    def __init__(self, arch: str = 'vgg19', weights: Optional[str] = None, allow_random_weights: bool = False,
                 layers: Sequence[str] = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1')):
        super().__init__()
        known = vgg_output_layers(arch)
        layers = tuple(layers)
        unknown = [name for name in layers if name not in known]
        if not layers or unknown:
            raise ValueError(f'VGGFeatures({arch!r}) layers must be a non-empty subset of {known}, got {layers}')
        self.arch = arch
        self.layers = layers
        self.layer_index: Dict[str, int] = {}  # output name -> index in `features` or `classifier`
        deepest = max(layers, key=known.index)
        modules = []
        in_channels = 3
        widths = iter(w for block in _VGG_BLOCKS[arch] for w in block)
        for kind, name in _vgg_layer_names(arch):
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
        self.classifier = None
        if deepest in VGG_CLASSIFIER_LAYERS:
            width = 4096
            # Dropout (a no-op in eval mode) keeps torchvision's indices: classifier.0 and classifier.3.
            head = [torch.nn.Linear(in_channels * _CLASSIFIER_POOL ** 2, width), torch.nn.ReLU(), torch.nn.Dropout(),
                    torch.nn.Linear(width, width), torch.nn.ReLU()]
            self.layer_index.update(fc6=1, fc7=4)
            self.classifier = torch.nn.Sequential(*head[:self.layer_index[deepest] + 1])
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        filename, url = VGG_WEIGHTS[arch]
        state = load_pretrained_state(weights, what=f'{arch.upper()} features', filename=filename,
                                      url_hint=url, allow_random_weights=allow_random_weights)
        if state is None:
            # Random stand-ins: He initialisation keeps the feature scale through the ReLU stack. With
            # PyTorch's default init relu4_1 shrinks about 300x and the content loss on it to ~1e-8.
            for module in self.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity='relu')
                    torch.nn.init.zeros_(module.bias)
        else:
            # The file may hold deeper layers and the classifier's last layer; keep what this stack uses.
            own = self.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise ValueError(f'{arch.upper()} weights lack {missing[:4]}...: expected torchvision\'s {arch} layout '
                                 f'("features.<i>.weight", "classifier.<i>.weight"), as in {filename}')
            self.load_state_dict({k: state[k] for k in own})
        self.requires_grad_(False).eval()

    train = _stay_in_eval

    def forward(self, img: torch.Tensor) -> Dict[str, torch.Tensor]:
        _check_images(img, type(self).__name__)
        return self.forward_normalized(((img.to(torch.float32) + 1) / 2 - self.mean) / self.std)

    def forward_normalized(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """forward() for input already ImageNet-normalised (or scaled by the caller's own convention)."""
        out: Dict[str, torch.Tensor] = {}
        x = self._run(self.features, x, out)
        if self.classifier is not None:
            self._run(self.classifier, F.adaptive_avg_pool2d(x, _CLASSIFIER_POOL).flatten(1), out)
        return out

    def _run(self, stack: torch.nn.Sequential, x: torch.Tensor, out: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Run one stack, storing the requested layers of it in `out`; returns its output."""
        in_classifier = stack is self.classifier
        wanted = {self.layer_index[name]: name for name in self.layers
                  if (name in VGG_CLASSIFIER_LAYERS) == in_classifier}
        for idx, module in enumerate(stack):
            x = module(x)
            if idx in wanted:
                out[wanted[idx]] = x
        return x


@persistence.persistent_class
class VGG19Features(VGGFeatures):
    """VGGFeatures('vgg19'): the content (relu4_1) and AdaIN style (relu1_1..relu4_1) losses' network."""

    def __init__(self, weights: Optional[str] = None, allow_random_weights: bool = False,
                 layers: Sequence[str] = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1')):
        super().__init__('vgg19', weights, allow_random_weights, layers)


LPIPS_FILENAME = 'vgg.pth'
LPIPS_URL = 'https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth'
LPIPS_LAYERS = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
# LPIPS's own input scaling ([-1, 1] -> roughly ImageNet-normalised), not torchvision's mean / std.
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LPIPS_EPS = 1e-10  # added to the channel norm before dividing, as LPIPS does


@persistence.persistent_class
class LPIPS(torch.nn.Module):
    """LPIPS v0.1 on VGG-16, the perceptual distance image projectors minimise (StyleGAN2, PTI, EG3D).

    forward(a, b) with images (N, 3, H, W) in [-1, 1] returns distances (N,):
    sum over layers l of mean over pixels of sum_c w_lc (f_l(a) / |f_l(a)| - f_l(b) / |f_l(b)|)_c ** 2,
    f_l = VGG-16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 activations of the scaled input,
    |.| the norm over channels, w_l >= 0 the learned per-channel weights of LPIPS's 1x1 linear layers.
    Weights: torchvision's `vgg16-397923af.pth` (`vgg_weights`) and LPIPS v0.1's `vgg.pth`
    (`lin_weights`, keys `lin{l}.model.1.weight` of shape (1, C, 1, 1)). Random stand-ins:
    He-initialised VGG and non-negative linear weights with mean 1/C.
    """

    def __init__(self, vgg_weights: Optional[str] = None, lin_weights: Optional[str] = None,
                 allow_random_weights: bool = False):
        super().__init__()
        self.vgg = VGGFeatures('vgg16', weights=vgg_weights, allow_random_weights=allow_random_weights,
                               layers=LPIPS_LAYERS)
        self.register_buffer('shift', torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('scale', torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        channels = [widths[-1] for widths in _VGG_BLOCKS['vgg16']]
        state = load_pretrained_state(lin_weights, what='LPIPS v0.1 linear layers (VGG-16)', filename=LPIPS_FILENAME,
                                      url_hint=LPIPS_URL, allow_random_weights=allow_random_weights)
        weights = []
        for idx, width in enumerate(channels):
            if state is None:
                weight = torch.rand(width) * (2 / width)
            else:
                key = f'lin{idx}.model.1.weight'
                if key not in state or tuple(state[key].shape) != (1, width, 1, 1):
                    found = tuple(state[key].shape) if key in state else 'missing'
                    raise ValueError(f'LPIPS weights need "{key}" of shape (1, {width}, 1, 1) (LPIPS v0.1 vgg.pth); '
                                     f'got {found}')
                weight = state[key].reshape(width).to(torch.float32)
            if (weight < 0).any():
                raise ValueError(f'LPIPS linear weights lin{idx} must be non-negative (LPIPS clamps them in training)')
            weights.append(weight)
        self.lin = torch.nn.ParameterList([torch.nn.Parameter(w.view(1, -1, 1, 1)) for w in weights])
        self.requires_grad_(False).eval()

    train = _stay_in_eval

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_images(a, 'LPIPS')
        if a.shape != b.shape:
            raise ValueError(f'LPIPS compares images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}')
        fa = self.vgg.forward_normalized((a.to(torch.float32) - self.shift) / self.scale)
        fb = self.vgg.forward_normalized((b.to(torch.float32) - self.shift) / self.scale)
        total = 0
        for name, weight in zip(LPIPS_LAYERS, self.lin):
            na = fa[name] / (fa[name].square().sum(dim=1, keepdim=True).sqrt() + _LPIPS_EPS)
            nb = fb[name] / (fb[name].square().sum(dim=1, keepdim=True).sqrt() + _LPIPS_EPS)
            total = total + ((na - nb).square() * weight).sum(dim=1).mean(dim=(1, 2))
        return total


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

    train = _stay_in_eval

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        _check_images(img, 'IdentityEncoder')
        h, w = img.shape[2:]
        top, bottom, left, right = self.CROP
        x = img.to(torch.float32)[:, :, round(top * h):round(bottom * h), round(left * w):round(right * w)]
        x = self.face_pool(x)
        x = super().forward(x)[-1]
        x = self.output_layer(x)
        return torch.nn.functional.normalize(x, dim=1)


def check_loss_weights(vgg: Optional[str], arcface: Optional[str]) -> None:
    """The training losses' weight files (`--vgg`, `--arcface`: path or URL) are given and load as the
    losses will load them; otherwise ValueError('<option>: <what is wrong and what to do>')."""
    weights = (('--vgg', vgg, 'VGG-19 weights vgg19-dcbb9e9d.pth (content and style losses)', VGG19Features),
               ('--arcface', arcface, 'ArcFace IR-SE-50 weights model_ir_se50.pth (identity loss)', IdentityEncoder))
    for option, value, what, _ in weights:
        if value is None:
            raise ValueError(f'{option}: missing: pass the path or URL of the {what}, or '
                             f'--random-perceptual for random stand-ins (tests and CPU demos only)')
        if not util.is_url(value) and not os.path.isfile(value):
            raise ValueError(f'{option}: file "{value}" does not exist ({what})')
    for option, value, what, build in weights:
        try:
            build(value)
        except (*cli.INPUT_ERRORS, RuntimeError) as err:  # torch.load says RuntimeError for a cut-off file
            hint = cli.cache_hint(value) or 'give the original file'
            raise ValueError(f'{option}: cannot load the {what} from {value}: {err}; {hint}') from err
