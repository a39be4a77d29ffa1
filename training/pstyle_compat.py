"""Loading the style generators published by the PStyle-3D authors (Alan0693/PStyle-3D).

Their checkpoints are torch state dicts (`torch.save({'G_ema': G.state_dict(), ...})`) of their
TriPlaneGenerator: EG3D's keys plus, in every modulated layer, `affine1`, and ModRes blocks `res0` /
`res1` (AdaResBlock) in the backbone blocks of resolution <= 32 and in both super-resolution
blocks. Three differences from our parametrisation are converted here (facts from their
training/networks_stylegan2.py; see docs/method.md):
- their ModRes convolutions are `Sequential(EqualConv2d, FusedLeakyReLU)`: `conv.0.weight`,
  `conv.1.bias` -> our `conv.weight`, `conv.bias` (same maths);
- their ModRes `affine` is an equalised-lr layer (weight scaled by 1/sqrt(in) at run time), ours a
  plain linear layer: the weight is pre-scaled;
- their torgb multiplies s by t = g * B(d); ours by 1 + alpha * g * (B(d) - 1): at alpha = 1 the
  same when our bias is theirs + 1 - 1/g.
Their ModRes forward returns input + skip (twice the input): their generators record
`domain_kwargs['modres_mode'] = RELEASE_MODRES_MODE`, for which the generator gives its ModRes
blocks that forward (ReleaseModRes, installed by `use_release_modres`). Their style encoder is a
separately pickled module with torchvision inside and is not loaded: pass domain codes
(N, num_ws, 512) or train our encoder.
"""

import copy
import io
import pickle
import zipfile
from typing import Any, BinaryIO, Dict, Optional

import numpy as np
import torch

import configs
import dnnlib
from training.dam_layers import ModRes

# The configuration their scripts build (gen_samples.py / gen_style_sample.py of the release), as data.
_RELEASE = configs.load_network_preset('pstyle3d_release')
PSTYLE3D_DOMAIN_KWARGS = dict(_RELEASE.domain_kwargs)
PSTYLE3D_G_KWARGS = dict(configs.load_preset(_RELEASE.base_preset).G_kwargs)
PSTYLE3D_NEURAL_RENDERING_RESOLUTION = _RELEASE.neural_rendering_resolution
RELEASE_MODRES_MODE = 'pstyle3d_release'  # domain_kwargs['modres_mode'] of their generators


class ReleaseModRes(ModRes):
    """ModRes as their release runs it: R(x, d) is computed there but discarded, the block returns
    input + skip = x + alpha * x (twice the input at alpha = 1). Only for rendering their published
    weights as they render; same parameters as ModRes."""

    def forward(self, x: torch.Tensor, d: Optional[torch.Tensor], alpha: float = 1) -> torch.Tensor:
        if d is None or alpha == 0:
            return x
        return x + alpha * x


def use_release_modres(network: torch.nn.Module) -> None:
    """Give every ModRes block of `network` their release's forward (ReleaseModRes), in place: the
    modules, parameters and state-dict keys stay as they are."""
    for module in network.modules():
        if type(module) is ModRes:  # exactly ModRes: a subclass has its own forward
            module.__class__ = ReleaseModRes


def _split(key: str):
    """'a.b.res0.conv.0.weight' -> ('a.b.res0', 'conv.0.weight'), or (None, key) outside a ModRes."""
    parts = key.split('.')
    for idx, part in enumerate(parts):
        if part in ('res0', 'res1'):
            return '.'.join(parts[:idx + 1]), '.'.join(parts[idx + 1:])
    return None, key


def convert_pstyle3d_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The authors' generator state dict -> ours (keys renamed, three tensors re-parametrised)."""
    out = {}
    for key, value in state.items():
        value = torch.as_tensor(value)
        block, rest = _split(key)
        if block is not None:
            conv_names = {'conv.0.weight': 'conv.weight', 'conv.1.bias': 'conv.bias',
                          'conv2.0.weight': 'conv2.weight', 'conv2.1.bias': 'conv2.bias'}
            if rest in conv_names:
                key = f'{block}.{conv_names[rest]}'
            elif rest == 'affine.weight':
                value = value / np.sqrt(value.shape[1])  # fold in their run-time equalised-lr gain
        elif key.endswith('.torgb.affine1.bias'):
            torgb_weight = state[key[:-len('affine1.bias')] + 'weight']
            gain = 1 / np.sqrt(torgb_weight[0].numel())  # ToRGBLayer.weight_gain = 1/sqrt(in * k * k)
            value = value + (1 - 1 / gain)
        out[key] = value
    return out


def load_pstyle3d_state_dict(G: torch.nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Copy the authors' state dict into a DAM-enabled generator `G` built with PSTYLE3D_DOMAIN_KWARGS.

    Every tensor of theirs must find its place (name and shape) and every DAM / EG3D tensor of
    `G` must be given; only `G`'s stored domain codes and encoder (absent from their file) and
    non-persistent buffers may be left out. Raises ValueError naming the mismatches.
    """
    converted = convert_pstyle3d_state_dict(state)
    own = G.state_dict()
    unknown = [k for k in converted if k not in own]
    wrong = [f'{k} {tuple(converted[k].shape)} vs {tuple(own[k].shape)}' for k in converted
             if k in own and converted[k].shape != own[k].shape]
    missing = [k for k in own if k not in converted and k != 'domain_codes' and not k.startswith('encoder.')]
    if unknown or wrong or missing:
        raise ValueError(f'the PStyle-3D state dict does not fit this generator: unknown keys {unknown[:4]}, '
                         f'shape mismatches {wrong[:4]}, missing keys {missing[:4]} '
                         f'(build it from the release configuration: pstyle_compat.PSTYLE3D_G_KWARGS)')
    with torch.no_grad():
        for k, v in converted.items():
            own[k].copy_(v)


def build_pstyle3d_generator(state: Dict[str, torch.Tensor], G_kwargs: Optional[dict] = None) -> torch.nn.Module:
    """A TriPlaneGenerator holding the authors' weights, rendering as their release does.

    G_kwargs: EG3D generator kwargs of the checkpoint (default: their FFHQ-512 configuration).
    """
    # Their DAM's domain_kwargs; the generator checks them and fills in the other defaults.
    kwargs = dict(copy.deepcopy(PSTYLE3D_G_KWARGS if G_kwargs is None else G_kwargs),
                  domain_kwargs=dict(PSTYLE3D_DOMAIN_KWARGS, domain_names=[]))
    G = dnnlib.util.construct_class_by_name(**kwargs)
    load_pstyle3d_state_dict(G, state)
    if G_kwargs is None:
        G.neural_rendering_resolution = PSTYLE3D_NEURAL_RENDERING_RESOLUTION
    return G.eval().requires_grad_(False)


def read_pstyle3d_checkpoint(f: BinaryIO) -> Optional[Dict[str, Any]]:
    """The authors' checkpoint read from an open file, or None (file position restored) when `f` is not
    a `torch.save` zip archive with a state dict under 'G_ema'. Read with weights_only=True, so no
    code inside the file runs."""
    if not f.seekable():
        return None
    start = f.tell()
    if f.read(4) != b'PK\x03\x04':
        f.seek(start)
        return None
    f.seek(start)
    try:
        ckpt = torch.load(io.BytesIO(f.read()), map_location='cpu', weights_only=True)
    except (RuntimeError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError):
        ckpt = None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('G_ema'), dict):
        f.seek(start)
        return None
    return ckpt


def pstyle3d_networks(ckpt: Dict[str, Any], G_kwargs: Optional[dict] = None) -> Dict[str, Any]:
    """The authors' checkpoint in legacy.load_network_pkl's layout: {'G', 'G_ema'} (same weights,
    separate copies), 'D' None (they publish no discriminator), 'training_set_kwargs' and
    'augment_pipe' None."""
    G_ema = build_pstyle3d_generator(ckpt['G_ema'], G_kwargs)
    return dict(G=copy.deepcopy(G_ema), G_ema=G_ema, D=None, training_set_kwargs=None, augment_pipe=None)

