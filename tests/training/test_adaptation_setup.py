"""Start networks of a style-adaptation run (training/adaptation_setup.py)."""

import pickle

import pytest
import torch

import configs
import dnnlib
from camera_utils import camera_label
from training.adaptation_setup import prepare_networks
from training.domain_adaptation import add_domain

pytestmark = pytest.mark.usefixtures('single_cpu_thread')


@pytest.fixture(scope='module')
def eg3d_pickle(tmp_path_factory):
    """A plain EG3D-layout pickle (no resume_state) of the tiny networks."""
    preset = configs.load_preset('tiny')
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(**preset.G_kwargs).eval()
    D = dnnlib.util.construct_class_by_name(**preset.D_kwargs).eval()
    path = tmp_path_factory.mktemp('pkl') / 'eg3d.pkl'
    with open(path, 'wb') as f:
        pickle.dump(dict(G=G, D=D, G_ema=G, training_set_kwargs=None, augment_pipe=None), f)
    return str(path), G, preset


def _render(G, **domain):
    c = camera_label(0.1)
    ws = torch.randn([1, G.backbone.num_ws, G.w_dim], generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    with torch.no_grad():
        return G.synthesis(ws, c, noise_mode='const', neural_rendering_resolution=32, **domain)['image']


def test_pstyle_start_from_eg3d_pickle_renders_the_source(eg3d_pickle):
    path, G_ref, preset = eg3d_pickle
    nets = prepare_networks(path, preset.G_kwargs, preset.D_kwargs, 'pstyle', 'pixar', preset.domain_kwargs)
    assert nets['resume_state'] is None
    assert nets['G'].domain_names == ['pixar'] and nets['G'].encoder is not None
    assert nets['G_src'].domain_kwargs is None  # the frozen source stays plain EG3D
    for key, value in G_ref.state_dict().items():
        torch.testing.assert_close(nets['G_src'].state_dict()[key], value, atol=0, rtol=0)
    exemplar = torch.rand([1, 3, 128, 128], generator=torch.Generator().manual_seed(2)) * 2 - 1
    torch.testing.assert_close(_render(nets['G_ema'].eval(), domain=exemplar), _render(nets['G_src']), atol=0, rtol=0)


def test_finetune_start_is_a_plain_copy(eg3d_pickle):
    path, G_ref, preset = eg3d_pickle
    nets = prepare_networks(path, preset.G_kwargs, preset.D_kwargs, 'finetune', 'pixar', preset.domain_kwargs)
    assert nets['G'].domain_kwargs is None and nets['G'] is not nets['G_src']
    assert sorted(nets['G'].state_dict()) == sorted(G_ref.state_dict())


def test_add_domain_keeps_stored_codes(eg3d_pickle):
    _, G_ref, preset = eg3d_pickle
    G = add_domain(G_ref, 'pixar', preset.domain_kwargs)
    code = torch.randn([G.backbone.num_ws, G.w_dim], generator=torch.Generator().manual_seed(4))
    G.set_domain_code('pixar', code)
    G2 = add_domain(G, 'arcane', preset.domain_kwargs)
    assert G2.domain_names == ['pixar', 'arcane']
    torch.testing.assert_close(G2.domain_codes[0], code, atol=0, rtol=0)
    assert float(G2.domain_codes[1].abs().max()) == 0.0
    shared = {k: v for k, v in G.state_dict().items() if k != 'domain_codes'}
    for key, value in shared.items():
        torch.testing.assert_close(G2.state_dict()[key], value, atol=0, rtol=0)
    assert add_domain(G2, 'pixar', preset.domain_kwargs).domain_names == ['pixar', 'arcane']


def test_encoder_starts_from_ir_se50_file_only_when_it_fits(eg3d_pickle, tmp_path):
    path, _, preset = eg3d_pickle
    # The tiny encoder is narrower than IR-SE-50: the file is not applied (and not even read).
    nets = prepare_networks(path, preset.G_kwargs, preset.D_kwargs, 'pstyle', 'pixar', preset.domain_kwargs,
                            encoder_init=str(tmp_path / 'not-read.pth'))
    assert nets['G'].encoder.channels == tuple(preset.domain_kwargs['encoder_kwargs']['channels'])
    # An IR-SE-50-shaped encoder reads it (here: a missing file -> the pretrained-weights error).
    wide = dict(preset.domain_kwargs, encoder_kwargs=dict(img_resolution=32))
    with pytest.raises(FileNotFoundError, match='not-there.pth'):
        prepare_networks(path, preset.G_kwargs, preset.D_kwargs, 'pstyle', 'pixar', wide,
                         encoder_init=str(tmp_path / 'not-there.pth'))


def test_add_domain_gives_an_encoderless_dam_network_a_fresh_encoder(eg3d_pickle):
    """A DAM network fitted without an encoder (the demo's source fit) can be trained by --method=pstyle:
    it gains the preset's encoder and keeps its DAM weights and stored codes."""
    _, G_ref, preset = eg3d_pickle
    no_encoder = dict(preset.domain_kwargs, encoder_kwargs=None)
    G = add_domain(G_ref, 'toon', no_encoder)
    assert G.encoder is None
    with torch.no_grad():
        for name, p in G.named_parameters():
            if 'affine1' in name:
                p.normal_(generator=torch.Generator().manual_seed(5))
    G.set_domain_code('toon', torch.full([G.backbone.num_ws, G.w_dim], 0.5))
    for domain, names in (('toon', ['toon']), ('pixar', ['toon', 'pixar'])):
        G2 = add_domain(G, domain, preset.domain_kwargs)
        assert G2.domain_names == names
        assert G2.encoder is not None
        assert G2.encoder.channels == tuple(preset.domain_kwargs['encoder_kwargs']['channels'])
        for key, value in G.state_dict().items():
            if key != 'domain_codes':
                torch.testing.assert_close(G2.state_dict()[key], value, atol=0, rtol=0)
        torch.testing.assert_close(G2.domain_codes[0], G.domain_codes[0], atol=0, rtol=0)
        torch.testing.assert_close(_render(G2, domain='toon', alpha=1), _render(G, domain='toon', alpha=1),
                                   atol=0, rtol=0)
