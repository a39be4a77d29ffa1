"""The Domain Adaptation Module (DAM) at the generator level: stored domain codes, the exemplar
encoder, and all network surgery (adding, extending and removing the DAM).

The layer maths (domain modulation, ModRes, AdaIN) is in training.dam_layers; TriPlaneGenerator
mixes in `DomainInputMixin` for the stored codes and the encoder.

Usage (training one domain from an EG3D generator `G_src`):
    G = with_domain_adaptation(G_src, ['pixar'], encoder_kwargs=dict(img_resolution=256))
    G.encoder.load_ir_se_weights('model_ir_se50.pth')           # optional pSp-style start
    params = training.trainable.select_parameters(G, ['backbone.synthesis', 'superresolution', 'dam', 'encoder'])
    out = G.synthesis(ws, c, domain=exemplars)                   # (N, 3, H, W) in [-1, 1]; or a code / a name
    G.set_domain_code('pixar', mean_domain_code(G.encoder, some_exemplars))  # for --domain=pixar later
or from kwargs: construct_class_by_name(**enable_domain_adaptation(G_kwargs, ['pixar'], ...)) followed by
copy_source_weights(G_src, G). To train one more domain on a DAM-enabled G: add_domain(G, 'arcane', domain_kwargs).
"""

import copy
from typing import List, Optional, Sequence, Union

import torch

import dnnlib
from training import pstyle_compat
from training.dam_layers import rng_neutral
from training.encoders import GradualStyleEncoder
from training.trainable import is_encoder_parameter

# 'residual': ModRes adds alpha * R(x); the authors' release: their forward (pstyle_compat.ReleaseModRes).
MODRES_MODES = ('residual', pstyle_compat.RELEASE_MODRES_MODE)
DOMAIN_KWARGS_DEFAULTS = dict(
    domain_names=(),            # Trained domains whose mean code the network stores, selected by name.
    encoder_kwargs=None,        # GradualStyleEncoder kwargs (num_ws / w_dim filled in); None = no encoder.
    modres_max_res=32,          # ModRes in the backbone blocks of resolution <= this (0 = none).
    sr_modres=False,            # ModRes in the super-resolution blocks too (the authors' 512 release has it).
    modres_mode='residual',     # One of MODRES_MODES.
)


def parse_domain_kwargs(domain_kwargs: Optional[dict]) -> Optional[dnnlib.EasyDict]:
    """Validate `domain_kwargs` and fill in defaults; None (no DAM) stays None."""
    if domain_kwargs is None:
        return None
    unknown = sorted(set(domain_kwargs) - set(DOMAIN_KWARGS_DEFAULTS))
    if unknown:
        raise ValueError(f'unknown domain_kwargs {unknown}; expected some of {sorted(DOMAIN_KWARGS_DEFAULTS)}')
    kwargs = dnnlib.EasyDict(copy.deepcopy(DOMAIN_KWARGS_DEFAULTS))
    kwargs.update(copy.deepcopy(dict(domain_kwargs)))
    names = kwargs.domain_names
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f'domain_names must be a list of distinct non-empty names, got {names!r}')
    kwargs.domain_names = list(names)
    if kwargs.modres_mode not in MODRES_MODES:
        raise ValueError(f'modres_mode must be one of {MODRES_MODES}, got {kwargs.modres_mode!r}')
    return kwargs


def backbone_dam_kwargs(domain_kwargs: Optional[dict]) -> dict:
    """Extra SynthesisNetwork kwargs for a DAM-enabled backbone ({} without DAM: EG3D's exact kwargs)."""
    kwargs = parse_domain_kwargs(domain_kwargs)
    if kwargs is None:
        return {}
    return dict(use_dam=True, modres_max_res=kwargs.modres_max_res)


def superresolution_dam_kwargs(domain_kwargs: Optional[dict]) -> dict:
    """Extra super-resolution kwargs for a DAM-enabled generator ({} without DAM)."""
    kwargs = parse_domain_kwargs(domain_kwargs)
    if kwargs is None:
        return {}
    return dict(use_dam=True, modres=kwargs.sr_modres)


DomainInput = Union[None, str, torch.Tensor]


class DomainInputMixin:
    """Stored domain codes and the exemplar encoder of a DAM-enabled generator (TriPlaneGenerator).

    Registers a `domain_codes` buffer (K, num_ws, w_dim), one mean code per name in
    `domain_kwargs['domain_names']`, and the encoder as `self.encoder` (or None). Called once the
    synthesis and super-resolution blocks exist: it gives their ModRes blocks the forward that
    `domain_kwargs['modres_mode']` names.
    """

    def _init_domain_input(self, domain_kwargs: Optional[dict], num_ws: int, w_dim: int) -> None:
        kwargs = parse_domain_kwargs(domain_kwargs)
        self.domain_kwargs = kwargs
        self.encoder = None
        if kwargs is None:
            return
        if kwargs.modres_mode == pstyle_compat.RELEASE_MODRES_MODE:
            pstyle_compat.use_release_modres(self)
        self.register_buffer('domain_codes', torch.zeros(len(kwargs.domain_names), num_ws, w_dim))
        if kwargs.encoder_kwargs is not None:
            with rng_neutral():
                self.encoder = GradualStyleEncoder(num_ws=num_ws, w_dim=w_dim, **kwargs.encoder_kwargs)

    @property
    def domain_names(self) -> List[str]:
        return [] if self.domain_kwargs is None else list(self.domain_kwargs.domain_names)

    def _domain_index(self, name: str) -> int:
        if self.domain_kwargs is None:
            raise ValueError(f'domain "{name}" requested, but this generator has no domain path '
                             '(built without domain_kwargs: a plain EG3D generator)')
        if name not in self.domain_kwargs.domain_names:
            raise ValueError(f'unknown domain "{name}"; this generator knows {self.domain_names}')
        return self.domain_kwargs.domain_names.index(name)

    def set_domain_code(self, name: str, code: torch.Tensor) -> None:
        """Store a domain's code, (num_ws, w_dim) or (1, num_ws, w_dim) -- usually the mean of the
        encoder's codes over the domain's training exemplars."""
        idx = self._domain_index(name)
        shape = tuple(self.domain_codes.shape[1:])
        if tuple(code.shape) not in (shape, (1,) + shape):
            raise ValueError(f'domain code for "{name}" must be {shape} or (1, {shape[0]}, {shape[1]}), '
                             f'got {tuple(code.shape)}')
        with torch.no_grad():
            self.domain_codes[idx].copy_(code.reshape(shape))

    def get_domain_code(self, domain: DomainInput, batch_size: int,
                        source_ws: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """Per-layer domain code (batch_size, num_ws, w_dim), or None for no domain input.

        domain: None; a stored domain's name; a code (N or 1, num_ws, w_dim); or exemplar images
        (N or 1, 3, H, W) in [-1, 1], encoded by `self.encoder` (with the natural face's `source_ws`
        (N, num_ws, w_dim) when the encoder has a source branch).
        """
        if domain is None:
            return None
        if isinstance(domain, str):
            idx = self._domain_index(domain)
            return self.domain_codes[idx].unsqueeze(0).expand(batch_size, -1, -1)
        if not isinstance(domain, torch.Tensor):
            raise ValueError(f'domain must be None, a domain name, a code or exemplar images; got {type(domain)}')
        if self.domain_kwargs is None:
            raise ValueError('a domain code or exemplar was given, but this generator has no domain path '
                             '(built without domain_kwargs: a plain EG3D generator)')
        num_ws, w_dim = self.domain_codes.shape[1:]
        if domain.ndim == 4:
            if self.encoder is None:
                raise ValueError('exemplar images need a domain encoder: build the generator with '
                                 "domain_kwargs['encoder_kwargs'], or pass a stored domain name or a code")
            if self.encoder.source_proj is None:
                code = self.encoder(domain)  # one exemplar encodes once, then broadcasts
            else:
                if source_ws is not None:
                    domain = self._broadcast(domain, source_ws.shape[0], 'exemplar images')
                code = self.encoder(domain, source_ws)
        elif domain.ndim == 3 and tuple(domain.shape[1:]) == (num_ws, w_dim):
            code = domain.to(torch.float32)
        else:
            raise ValueError(f'domain tensor must be a code (N, {num_ws}, {w_dim}) or exemplar images (N, 3, H, W); '
                             f'got shape {tuple(domain.shape)}')
        return self._broadcast(code, batch_size, 'domain code')

    @staticmethod
    def _broadcast(x: torch.Tensor, batch_size: int, what: str) -> torch.Tensor:
        if x.shape[0] == batch_size:
            return x
        if x.shape[0] == 1:
            return x.expand(batch_size, *x.shape[1:])
        raise ValueError(f'{what} has batch {x.shape[0]}, expected {batch_size} or 1')


def enable_domain_adaptation(G_kwargs: dict, domain_names: Sequence[str] = (), **domain_kwargs) -> dnnlib.EasyDict:
    """EG3D generator kwargs -> the same kwargs plus `domain_kwargs` (see DOMAIN_KWARGS_DEFAULTS).

    Example: kw = enable_domain_adaptation(G_kwargs, ['pixar'], encoder_kwargs=dict(img_resolution=256));
    G = dnnlib.util.construct_class_by_name(**kw); copy_source_weights(G_src, G).
    """
    kwargs = dnnlib.EasyDict(copy.deepcopy(dict(G_kwargs)))
    kwargs.domain_kwargs = dict(parse_domain_kwargs(dict(domain_kwargs, domain_names=list(domain_names))))
    return kwargs


def copy_source_weights(src: torch.nn.Module, dst: torch.nn.Module) -> List[str]:
    """Copy every parameter and buffer of `src` (e.g. an EG3D generator) into `dst` (its DAM-enabled
    twin) by name; `dst`'s extra tensors (the DAM, stored codes, encoder) keep their values.

    Raises ValueError when a tensor of `src` is missing in `dst` or differs in shape. Returns the
    names of `dst` that `src` did not provide.
    """
    src_state = src.state_dict()
    dst_state = dst.state_dict()
    bad = [k for k, v in src_state.items() if k not in dst_state or dst_state[k].shape != v.shape]
    if bad:
        raise ValueError(f'{len(bad)} tensors of the source do not fit the target, e.g. {bad[:3]}: '
                         'build the target from the source\'s init kwargs (enable_domain_adaptation)')
    with torch.no_grad():
        for k, v in src_state.items():
            dst_state[k].copy_(v)
    return [k for k in dst_state if k not in src_state]


def with_domain_adaptation(G_src: torch.nn.Module, domain_names: Sequence[str] = (),
                           **domain_kwargs) -> torch.nn.Module:
    """A DAM-enabled copy of generator `G_src` (rebuilt from its init kwargs, EG3D weights copied).

    Renders exactly as `G_src` until the DAM is trained. `G_src` must carry `init_kwargs` (every
    persistent network does) and its class must accept `domain_kwargs` (TriPlaneGenerator).
    """
    init_kwargs = getattr(G_src, 'init_kwargs', None)
    if init_kwargs is None:
        raise ValueError('G_src has no init_kwargs: it must be a persistent network (torch_utils.persistence)')
    kwargs = enable_domain_adaptation(init_kwargs, domain_names, **domain_kwargs)
    G = type(G_src)(*getattr(G_src, 'init_args', ()), **kwargs)
    copy_source_weights(G_src, G)
    copy_render_settings(G_src, G)
    return G.to(next(G_src.parameters()).device)


def copy_render_settings(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Runtime rendering attributes that are not in the init kwargs (training may have changed them)."""
    for attr in ('neural_rendering_resolution', 'rendering_kwargs'):
        if hasattr(src, attr):
            setattr(dst, attr, copy.deepcopy(getattr(src, attr)))


def without_domain_adaptation(G: torch.nn.Module) -> torch.nn.Module:
    """The plain EG3D generator inside DAM-enabled `G`: its source weights, without the DAM, the stored
    codes and the encoder. Renders exactly as `G` does at alpha = 0."""
    init_kwargs = getattr(G, 'init_kwargs', None)
    if init_kwargs is None or init_kwargs.get('domain_kwargs') is None:
        raise ValueError('G has no domain adaptation to remove (no init_kwargs["domain_kwargs"])')
    kwargs = dnnlib.EasyDict({k: v for k, v in copy.deepcopy(dict(init_kwargs)).items() if k != 'domain_kwargs'})
    plain = type(G)(*getattr(G, 'init_args', ()), **kwargs)
    state = G.state_dict()
    with torch.no_grad():
        for k, v in plain.state_dict().items():
            v.copy_(state[k])  # every EG3D tensor is in G: the DAM only adds tensors
    copy_render_settings(G, plain)
    return plain.to(next(G.parameters()).device)


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
    assert not unexpected and all(is_encoder_parameter(k) or k == 'domain_codes'
                                  for k in missing), (missing, unexpected)
    with torch.no_grad():
        new_G.domain_codes[:len(G.domain_names)].copy_(G.domain_codes)
    copy_render_settings(G, new_G)
    return new_G


def mean_domain_code(encoder: torch.nn.Module, exemplars: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """Mean code (num_ws, w_dim) of `encoder` over exemplar images (M, 3, H, W) in [-1, 1], computed in
    eval mode (batch-norm running statistics, which this must not update)."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            codes = [encoder(exemplars[i:i + batch_size]) for i in range(0, exemplars.shape[0], batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(codes).mean(dim=0)

