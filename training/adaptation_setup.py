"""The networks a style-adaptation run starts from: G, G_ema, G_src (frozen) and D.

- From an official EG3D pickle (or any network without our `resume_state`): G_src is its G_ema
  (the published generator); for `--method=pstyle` G is a DAM-enabled copy of it (renders exactly
  as G_src until trained) that knows the domain being trained; for `--method=finetune` G is a
  plain copy. D is the pickle's D.
- From our own snapshot (it has `resume_state`): every network as saved, to continue exactly.
- Without a pickle (CPU demos and tests): G_src and D are built from the preset's kwargs.
"""

import copy
from typing import Optional

import torch

import dnnlib
from training.domain_adaptation import add_domain
from training.network_pickle import load_network_pkl
from training.ir_se import DEFAULT_CHANNELS


def load_start_networks(resume_pkl: Optional[str], G_kwargs: dict, D_kwargs: dict) -> dict:
    """{'G_src', 'D'} (+ 'G', 'G_ema', 'resume_state' for our snapshots), on the CPU."""
    if resume_pkl is None:
        return dict(G_src=dnnlib.util.construct_class_by_name(**G_kwargs),
                    D=dnnlib.util.construct_class_by_name(**D_kwargs))
    with dnnlib.util.open_url(resume_pkl) as f:
        data = load_network_pkl(f)
    if data.get('resume_state') is not None:
        return {k: data[k] for k in ('G', 'D', 'G_ema', 'G_src', 'resume_state')}
    return dict(G_src=data['G_ema'], D=data['D'])


def _has_ir_se50_layout(encoder: torch.nn.Module) -> bool:
    """Whether the IR-SE-50 file (model_ir_se50.pth) fits the encoder's backbone (not the tiny preset's)."""
    return encoder.num_layers == 50 and tuple(encoder.channels) == tuple(DEFAULT_CHANNELS)


def prepare_networks(resume_pkl: Optional[str], G_kwargs: dict, D_kwargs: dict, method: str, domain: Optional[str],
                     domain_kwargs: dict, encoder_init: Optional[str] = None) -> dict:
    """G, D, G_ema, G_src and `resume_state` (None unless resuming our snapshot), on the CPU.

    encoder_init: IR-SE-50 weights (path/URL) to start a *fresh* domain encoder from, as pSp does,
    when its backbone has that layout; None leaves its random initialisation.
    """
    nets = load_start_networks(resume_pkl, G_kwargs, D_kwargs)
    if 'resume_state' in nets:
        return nets
    G_src = nets['G_src']
    if method == 'pstyle':
        fresh_encoder = getattr(G_src, 'encoder', None) is None
        G = add_domain(G_src, domain, domain_kwargs)
        if fresh_encoder and encoder_init is not None and _has_ir_se50_layout(G.encoder):
            G.encoder.load_ir_se_weights(encoder_init)
    else:
        G = copy.deepcopy(G_src)
    return dict(G=G, D=nets['D'], G_ema=copy.deepcopy(G), G_src=G_src, resume_state=None)
