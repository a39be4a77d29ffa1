"""A tiny network pickle for the generation-script tests, written the way training writes snapshots.

The generator is EG3D's tiny fixture configuration (tests/fixtures/eg3d) with the fixture's weights;
`domain_names` adds the DAM with stored codes, so that a domain visibly changes the picture.
"""

import pickle
from typing import Sequence

import torch

import dnnlib
from tests.eg3d_fixtures import load_state, load_tiny_config
from training.domain_adaptation import enable_domain_adaptation

TINY_ENCODER = dict(img_resolution=32, channels=(16, 32, 32, 64), head_channels=32)  # a small exemplar encoder


def build_tiny_generator(domain_names: Sequence[str] = ()) -> torch.nn.Module:
    """The fixture's tiny TriPlaneGenerator (output 128, neural rendering 32) with the fixture's weights.

    With `domain_names`, the DAM-enabled twin with a small exemplar encoder, whose domain path is
    perturbed (a fresh DAM is the identity) and whose stored codes are random, so each domain changes
    the output.
    """
    config = load_tiny_config()
    G_kwargs = dict(config['G_kwargs'])
    if domain_names:
        G_kwargs = enable_domain_adaptation(G_kwargs, list(domain_names), encoder_kwargs=TINY_ENCODER)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the encoder's and DAM's initial weights come from the global RNG
        G = dnnlib.util.construct_class_by_name(**G_kwargs).eval().requires_grad_(False)
    state = load_state('tiny_G_state.npz')
    G.load_state_dict(state, strict=not domain_names)
    G.neural_rendering_resolution = config['neural_rendering_resolution']
    if domain_names:
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for name, tensor in G.named_parameters():
                if name not in state and not name.startswith('encoder.'):  # the encoder is random already
                    tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.1)
            for name in domain_names:
                G.set_domain_code(name, torch.randn(G.domain_codes.shape[1:], generator=gen))
    return G


def write_tiny_snapshot(path: str, domain_names: Sequence[str] = ()) -> torch.nn.Module:
    """Pickle a tiny generator in EG3D's snapshot layout (persistent objects) and return it."""
    G = build_tiny_generator(domain_names)
    D = dnnlib.util.construct_class_by_name(**load_tiny_config()['D_kwargs'])
    with open(path, 'wb') as f:
        pickle.dump(dict(G=G, D=D, G_ema=G, training_set_kwargs=None, augment_pipe=None), f)
    return G
