"""training/trainable.py: which generator parameters --train selects."""

import pytest

import configs
import dnnlib
import gen_utils
import legacy
from training import pstyle_compat, trainable
from training.dam_layers import ModRes
from training.domain_adaptation import enable_domain_adaptation
from training.layers import SynthesisLayer, ToRGBLayer


def _generator(preset: str, **domain_kwargs):
    """The --cfg preset's generator with its DAM (`domain_kwargs` override the preset's)."""
    cfg = configs.load_preset(preset)
    kwargs = dict(cfg.domain_kwargs, **domain_kwargs)
    return dnnlib.util.construct_class_by_name(**enable_domain_adaptation(cfg.G_kwargs, ['pixar'], **kwargs))


GENERATORS = {
    'tiny': lambda: _generator('tiny'),  # ModRes in the backbone up to 32 px, an encoder
    'tiny_sr_modres': lambda: _generator('tiny', sr_modres=True),
    'tiny_release': lambda: _generator('tiny', **pstyle_compat.PSTYLE3D_DOMAIN_KWARGS),
    # a pickled network, rebuilt by the loader: domain modulation, ModRes in the super-resolution only
    'demo_network': lambda: legacy.load_network_pkl(gen_utils.resolve_network_path(None))['G_ema'],
}


def _expected_modres_blocks(G) -> int:
    """ModRes blocks the DAM layout asks for: res0 and res1 in every block up to modres_max_res (the 4x4
    block has no conv0, so no res0), and in both super-resolution blocks with sr_modres."""
    kwargs = G.domain_kwargs
    backbone = sum(1 if res == 4 else 2 for res in G.backbone.synthesis.block_resolutions
                   if res <= kwargs.modres_max_res)
    return backbone + (4 if kwargs.sr_modres else 0)


@pytest.mark.parametrize('which', sorted(GENERATORS))
def test_dam_is_every_domain_affine_and_every_modres(which):
    G = GENERATORS[which]()
    layers = [m for m in G.modules() if isinstance(m, (SynthesisLayer, ToRGBLayer))]
    modres = [m for m in G.modules() if isinstance(m, ModRes)]
    assert layers and all(layer.affine1 is not None for layer in layers)  # one domain affine per modulated layer
    assert len(modres) == _expected_modres_blocks(G)
    dam_ids = {id(p) for module in [layer.affine1 for layer in layers] + modres for p in module.parameters()}
    dam = dict(trainable.select_parameters(G, ['dam']))
    assert {id(p) for p in dam.values()} == dam_ids and len(dam) == len(dam_ids)
    assert set(dam) == trainable.dam_parameter_names(G)
    # DAM, encoder and EG3D's own parameters split the generator; prefixes never select the DAM.
    encoder = {n for n, _ in trainable.select_parameters(G, ['encoder'])} if G.encoder is not None else set()
    eg3d = {n for n, _ in trainable.select_parameters(G, ['backbone', 'decoder', 'superresolution'])}
    assert not (set(dam) & encoder or set(dam) & eg3d or encoder & eg3d)
    assert set(dam) | encoder | eg3d == {n for n, _ in G.named_parameters()}


def test_plain_eg3d_generator_has_no_dam(tiny_G):
    assert trainable.dam_parameter_names(tiny_G) == set()
    with pytest.raises(ValueError, match='"dam" selects no generator parameter'):
        trainable.select_parameters(tiny_G, ['dam'])
    assert len(trainable.select_parameters(tiny_G, ['backbone.synthesis'])) > 0
