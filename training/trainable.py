"""Which generator parameters a style-adaptation run trains (train.py --train).

A part is either a special name or a dotted module prefix of the generator:
- `dam`: the Domain Adaptation Module wherever it sits: the parameters of the modules that
  training.dam_layers builds as the DAM (`is_dam_module`: the per-layer domain affines and the ModRes
  blocks, in the backbone and in the super-resolution blocks);
- `encoder`: the domain feature extractor (`G.encoder`);
- any other dotted prefix, e.g. `backbone.synthesis`, `superresolution`, `decoder`,
  `backbone.mapping`: the generator's parameters under that module, *excluding* the DAM and the
  encoder (those are chosen only by their own names, so `--train=backbone.synthesis` alone
  fine-tunes the EG3D weights without touching the domain path).
`D` names the discriminator and is handled by the training loop.
"""

from typing import List, Sequence, Set, Tuple

import torch

from training.dam_layers import is_dam_module

ENCODER_NAME = 'encoder'  # the generator's attribute holding the exemplar encoder
PSTYLE_PARTS = ('backbone.synthesis', 'superresolution', 'dam', 'encoder', 'D')
FINETUNE_PARTS = ('backbone', 'decoder', 'superresolution', 'D')


def dam_parameter_names(G: torch.nn.Module) -> Set[str]:
    """Names of G's parameters that belong to its DAM modules (training.dam_layers.is_dam_module),
    e.g. 'backbone.synthesis.b4.conv1.affine1.weight'; empty for a plain EG3D generator."""
    return {f'{prefix}.{name}' for prefix, module in G.named_modules() if is_dam_module(module)
            for name, _ in module.named_parameters()}


def is_encoder_parameter(name: str) -> bool:
    return name.split('.')[0] == ENCODER_NAME


def parse_parts(spec: str) -> Tuple[str, ...]:
    """'backbone.synthesis,superresolution,dam' -> ('backbone.synthesis', 'superresolution', 'dam')."""
    parts = tuple(p.strip() for p in spec.split(',') if p.strip())
    if not parts:
        raise ValueError('--train must name at least one part, e.g. "backbone.synthesis,superresolution,dam,encoder,D"')
    return parts


def select_parameters(G: torch.nn.Module, parts: Sequence[str]) -> List[Tuple[str, torch.nn.Parameter]]:
    """(name, parameter) pairs of G that `parts` select, in G's registration order.

    Raises ValueError for a part that selects nothing (a typo, or `dam` / `encoder` on a
    generator without a domain path), listing G's top-level modules.
    """
    named = list(G.named_parameters())
    dam = dam_parameter_names(G)
    encoder = {n for n, _ in named if is_encoder_parameter(n)}
    own_parts = dam | encoder  # chosen only by their own names
    selected = set()
    for part in parts:
        if part == 'D':
            continue
        if part == 'dam':
            hits = dam
        elif part == 'encoder':
            hits = encoder
        else:
            hits = {n for n, _ in named if (n == part or n.startswith(part + '.')) and n not in own_parts}
        if not hits:
            top = sorted({n.split('.')[0] for n, _ in named})
            raise ValueError(f'--train part "{part}" selects no generator parameter; expected "dam", "encoder", "D" '
                             f'or a module prefix such as {", ".join(top)} (or "backbone.synthesis")')
        selected |= hits
    return [(n, p) for n, p in named if n in selected]
