"""training/trainable.py: which generator parameters --train selects."""

import pytest

import configs
import dnnlib
import gen_utils
import legacy
from training import pstyle_compat, trainable
from training.domain_adaptation import enable_domain_adaptation


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


def _old_name_rule(name):
    """The rule the structural selection replaces: a dotted part named affine1, res0 or res1."""
    return any(part in ('affine1', 'res0', 'res1') for part in name.split('.'))


@pytest.mark.parametrize('which', sorted(GENERATORS))
def test_dam_selection_is_what_the_name_rule_selected(which):
    G = GENERATORS[which]()
    names = [n for n, _ in G.named_parameters()]
    old = {n for n in names if _old_name_rule(n)}
    assert old and {n for n, _ in trainable.select_parameters(G, ['dam'])} == old
    rest = {n for n, _ in trainable.select_parameters(G, ['backbone', 'decoder', 'superresolution'])}
    assert rest == {n for n in names if not _old_name_rule(n) and not n.startswith('encoder.')}
