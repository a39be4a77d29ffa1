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
from training.domain_adaptation import copy_render_settings, enable_domain_adaptation, with_domain_adaptation
from training.ir_se import DEFAULT_CHANNELS
from training.trainable import is_encoder_parameter


def load_start_networks(resume_pkl: Optional[str], G_kwargs: dict, D_kwargs: dict,
                        resume_d_pkl: Optional[str] = None) -> dict:
    """{'G_src', 'D'} (+ 'G', 'G_ema', 'resume_state' for our snapshots), on the CPU.

    resume_d_pkl: a pickle whose D replaces the missing one of `resume_pkl` (the authors' checkpoints
    hold no discriminator; EG3D's pickle of the same resolution has one).
    """
    if resume_pkl is None:
        return dict(G_src=dnnlib.util.construct_class_by_name(**G_kwargs),
                    D=dnnlib.util.construct_class_by_name(**D_kwargs))
    import legacy  # the safe loader: maps persistent classes, never runs code from the file
    with dnnlib.util.open_url(resume_pkl) as f:
        data = legacy.load_network_pkl(f)
    if data.get('resume_state') is not None:
        return {k: data[k] for k in ('G', 'D', 'G_ema', 'G_src', 'resume_state')}
    D = data['D']
    if resume_d_pkl is not None:
        with dnnlib.util.open_url(resume_d_pkl) as f:
            D = legacy.load_network_pkl(f)['D']
    if D is None:
        raise ValueError(f'{resume_pkl} holds no discriminator; give one from EG3D\'s pickle (train.py --resume-d)')
    return dict(G_src=data['G_ema'], D=D)


def add_domain(G: torch.nn.Module, domain: str, domain_kwargs: dict) -> torch.nn.Module:
    """A DAM-enabled generator that stores `domain` and has an exemplar encoder, built from `G`.

    A plain G gets a fresh DAM (`domain_kwargs`: encoder_kwargs, modres_max_res, ...). A G that
    already has a DAM keeps it, its stored domains and its encoder, and gains the new name; if it
    has no encoder (e.g. a network fitted without one), it gets a fresh one of
    `domain_kwargs['encoder_kwargs']`, since the method learns the domain through it.
    """
    if getattr(G, 'domain_kwargs', None) is None:
        return with_domain_adaptation(G, [domain], **domain_kwargs)
    needs_encoder = G.encoder is None and domain_kwargs.get('encoder_kwargs') is not None
    if domain in G.domain_names and not needs_encoder:
        return copy.deepcopy(G)
    kept = {k: v for k, v in G.domain_kwargs.items() if k != 'domain_names'}
    if needs_encoder:
        kept['encoder_kwargs'] = domain_kwargs['encoder_kwargs']
    names = G.domain_names + ([] if domain in G.domain_names else [domain])
    new_G = type(G)(*getattr(G, 'init_args', ()), **enable_domain_adaptation(G.init_kwargs, names, **kept))
    state = {k: v for k, v in G.state_dict().items() if k != 'domain_codes'}
    missing, unexpected = new_G.load_state_dict(state, strict=False)
    # Only the fresh encoder and the codes (copied below) may be missing from G's state.
    assert not unexpected and all(is_encoder_parameter(k) or k == 'domain_codes' for k in missing), (missing, unexpected)
    with torch.no_grad():
        new_G.domain_codes[:len(G.domain_names)].copy_(G.domain_codes)
    copy_render_settings(G, new_G)
    return new_G


def _has_ir_se50_layout(encoder: torch.nn.Module) -> bool:
    """Whether the IR-SE-50 file (model_ir_se50.pth) fits the encoder's backbone (not the tiny preset's)."""
    return encoder.num_layers == 50 and tuple(encoder.channels) == tuple(DEFAULT_CHANNELS)


def prepare_networks(resume_pkl: Optional[str], G_kwargs: dict, D_kwargs: dict, method: str, domain: Optional[str],
                     domain_kwargs: dict, encoder_init: Optional[str] = None,
                     resume_d_pkl: Optional[str] = None) -> dict:
    """G, D, G_ema, G_src and `resume_state` (None unless resuming our snapshot), on the CPU.

    encoder_init: IR-SE-50 weights (path/URL) to start a *fresh* domain encoder from, as pSp does,
    when its backbone has that layout; None leaves its random initialisation.
    """
    nets = load_start_networks(resume_pkl, G_kwargs, D_kwargs, resume_d_pkl)
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
