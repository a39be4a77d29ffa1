"""Named training presets (JSON files next to this module).

- `configs/<name>.json` (train.py --cfg): the network (`G_kwargs`, `D_kwargs`, used when training
  starts without --resume), `neural_rendering_resolution`, the DAM added for --method=pstyle
  (`domain_kwargs`: encoder_kwargs, modres_max_res, sr_modres; see training.domain_adaptation),
  loop settings (`training`: lazy regularisation intervals, EMA, number of density-regulariser
  points, grid rows) and defaults of train.py options (`options`, e.g. kimg, tick, snap) that the
  command line overrides.
- `configs/domains/<name>.json` (train.py --domain): one style domain's option defaults on top of
  the --cfg ones (again overridden by the command line). A new domain is a new file here.
- `configs/networks/<name>.json`: fixed network configurations that are not training presets: the
  PStyle-3D authors' release (`pstyle3d_release`, read by training.pstyle_compat) and the bundled
  demo generator (`demo_synthetic`, read by training.source_fit).
"""

import json
import os
from typing import List

import dnnlib

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
DOMAIN_DIR = os.path.join(CONFIG_DIR, 'domains')
PRESET_KEYS = ('description', 'neural_rendering_resolution', 'G_kwargs', 'D_kwargs', 'domain_kwargs', 'training',
               'options')
DOMAIN_KEYS = ('description', 'options')
NETWORK_DIR = os.path.join(CONFIG_DIR, 'networks')
# G_kwargs entries that fix the generator's layout; training settings of a preset fit only this layout.
ARCHITECTURE_KEYS = ('img_resolution', 'z_dim', 'w_dim', 'c_dim', 'channel_base', 'channel_max')


def _names(folder: str) -> List[str]:
    return sorted(f[:-len('.json')] for f in os.listdir(folder) if f.endswith('.json'))


def list_presets() -> List[str]:
    """Names accepted by --cfg, e.g. ['ffhq512', 'tiny']."""
    return _names(CONFIG_DIR)


def list_domains() -> List[str]:
    """Domain presets accepted by --domain, e.g. ['arcane', 'caricature', 'illustration', 'pixar', ...]."""
    return _names(DOMAIN_DIR)


def _load(folder: str, name: str, keys, what: str, known: List[str]) -> dnnlib.EasyDict:
    """`folder`/<name>.json, which must hold exactly `keys` (None: any keys)."""
    if name not in known:
        raise ValueError(f'unknown {what} "{name}": expected one of {", ".join(known)} '
                         f'(files in {folder})')
    path = os.path.join(folder, name + '.json')
    with open(path, 'r', encoding='utf-8') as f:
        data = json.load(f)
    keys = data if keys is None else keys
    unexpected = sorted(set(data) - set(keys))
    missing = sorted(set(keys) - set(data))
    if unexpected or missing:
        raise ValueError(f'{path}: expected keys {list(keys)}; missing {missing}, unexpected {unexpected}')
    return dnnlib.EasyDict(data)


def load_preset(name: str) -> dnnlib.EasyDict:
    """The --cfg preset `name` as an EasyDict with PRESET_KEYS."""
    return _load(CONFIG_DIR, name, PRESET_KEYS, 'config preset (--cfg)', list_presets())


def architecture(G_kwargs: dict) -> dict:
    """The layout-defining part (ARCHITECTURE_KEYS) of generator kwargs: a preset's G_kwargs or a network's
    init_kwargs."""
    return {key: G_kwargs.get(key) for key in ARCHITECTURE_KEYS}


def presets_for(G_kwargs: dict) -> List[str]:
    """Names of the --cfg presets whose generator has the layout of `G_kwargs`."""
    return [name for name in list_presets() if architecture(load_preset(name).G_kwargs) == architecture(G_kwargs)]


def load_domain(name: str) -> dnnlib.EasyDict:
    """The --domain preset `name` as an EasyDict with DOMAIN_KEYS."""
    return _load(DOMAIN_DIR, name, DOMAIN_KEYS, 'style domain (--domain)', list_domains())


def load_network_preset(name: str) -> dnnlib.EasyDict:
    """The network configuration `configs/networks/<name>.json` as an EasyDict (keys as in the file)."""
    return _load(NETWORK_DIR, name, None, 'network configuration', _names(NETWORK_DIR))
