"""Finding and reading the pretrained weight files the user provides (VGG-19, ArcFace IR-SE-50).

The project ships no weights: a network that needs them takes a local path or a URL
(downloaded once and cached by `dnnlib.util.open_url`). Without either it looks in the cache
folder under the file's usual public name, and otherwise stops with an error saying what to
download and where to put it -- unless the caller explicitly asked for random-weight stand-ins.
"""

import io
import os
from typing import Dict, Optional

import torch

import dnnlib


def weights_cache_path(filename: str) -> str:
    """Where a weight file is looked for when no path or URL is given."""
    return dnnlib.util.make_cache_dir_path('weights', filename)


def load_pretrained_state(weights: Optional[str], *, what: str, filename: str, url_hint: str,
                          allow_random_weights: bool) -> Optional[Dict[str, torch.Tensor]]:
    """Read a torch state dict for `what`, or return None for random weights.

    weights: a local path, a URL, or None (then `weights_cache_path(filename)` is tried).
    Files are read with `torch.load(weights_only=True)`, so no code inside them runs.
    Raises FileNotFoundError when nothing is found and random weights were not requested.
    """
    if weights is None:
        default = weights_cache_path(filename)
        if os.path.isfile(default):
            weights = default
        elif allow_random_weights:
            return None
        else:
            raise FileNotFoundError(
                f'{what} needs pretrained weights: download "{filename}" (public copy: {url_hint}) and pass its '
                f'path or URL as weights=..., or put it at "{default}"; for random-weight stand-ins (tests, CPU '
                f'demo; the losses are then meaningless) pass allow_random_weights=True')
    if dnnlib.util.is_url(weights):
        with dnnlib.util.open_url(weights) as f:
            data = io.BytesIO(f.read())
        state = torch.load(data, map_location='cpu', weights_only=True)
    else:
        if not os.path.isfile(weights):
            raise FileNotFoundError(f'{what} weights file "{weights}" does not exist (expected "{filename}", '
                                    f'public copy: {url_hint})')
        state = torch.load(weights, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{what} weights "{weights}" do not hold a state dict (got {type(state).__name__})')
    return state
