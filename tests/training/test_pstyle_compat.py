"""Loading the PStyle-3D authors' generator state dicts (synthetic ones in their naming, tiny config)."""

import io

import numpy as np
import pytest
import torch

import dnnlib
import legacy
from camera_utils import camera_label
from tests.eg3d_fixtures import load_state
from torch_utils.safe_pickle import atomic_write_pickle
from training import pstyle_compat
from training.dam_layers import ModRes
from training.domain_adaptation import enable_domain_adaptation
from training.layers import modulated_conv2d


def _to_release(state):
    """Our state dict -> the authors' naming and parametrisation (written independently of the loader):
    ModRes convs are Sequential(EqualConv2d, FusedLeakyReLU), ModRes affine is equalised-lr, and their
    torgb uses t = g * B(d) where ours uses 1 + g * (B(d) - 1)."""
    out = {}
    for key, value in state.items():
        if key == 'domain_codes' or key.startswith('encoder.'):
            continue  # not part of their generator
        parts = key.split('.')
        if 'res0' in parts or 'res1' in parts:
            idx = max(i for i, p in enumerate(parts) if p in ('res0', 'res1')) + 1
            rest = '.'.join(parts[idx:])
            renamed = {'conv.weight': 'conv.0.weight', 'conv.bias': 'conv.1.bias',
                       'conv2.weight': 'conv2.0.weight', 'conv2.bias': 'conv2.1.bias'}
            if rest in renamed:
                key = '.'.join(parts[:idx] + [renamed[rest]])
            elif rest == 'affine.weight':
                value = value * np.sqrt(value.shape[1])
        elif key.endswith('.torgb.affine1.bias'):
            in_channels = state[key.replace('affine1.bias', 'weight')].shape[1]  # 1x1 kernel
            value = value - (1 - np.sqrt(in_channels))
        out[key] = value.clone()
    return out


@pytest.fixture(scope='module')
def tiny_kwargs(tiny_config):
    return tiny_config['G_kwargs']


@pytest.fixture(scope='module')
def trained(tiny_kwargs):
    """A release-configured tiny generator with EG3D's fixture weights and random ('trained') DAM weights."""
    G = dnnlib.util.construct_class_by_name(
        **enable_domain_adaptation(tiny_kwargs, (), **pstyle_compat.PSTYLE3D_DOMAIN_KWARGS))
    G.load_state_dict(load_state('tiny_G_state.npz'),
                      strict=False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if any(part in ('affine1', 'res0', 'res1') for part in name.split('.')):
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return G


def test_release_state_dict_maps_onto_ours(trained, tiny_kwargs):
    release = _to_release(trained.state_dict())
    assert 'backbone.synthesis.b8.res0.conv.0.weight' in release
    assert 'superresolution.block1.res1.conv2.1.bias' in release
    G = pstyle_compat.build_pstyle3d_generator(release, G_kwargs=tiny_kwargs)
    assert type(G.backbone.synthesis.b8.res0) is pstyle_compat.ReleaseModRes
    assert type(G.superresolution.block1.res1) is pstyle_compat.ReleaseModRes
    loaded = G.state_dict()
    for key, value in trained.state_dict().items():
        if key != 'domain_codes' and not key.startswith('encoder.'):
            torch.testing.assert_close(loaded[key], value, rtol=1e-6, atol=1e-6, msg=key)


def _release_modulation(layer, w, d, gain):
    """Their styles: affine(w) * gain and styles_d = affine1_release(d) * gain (equalised-lr linear)."""
    w1, b1 = layer.affine1.weight, layer.affine1.bias
    styles = layer.affine(w) * gain
    styles_d = (d @ w1.t() / np.sqrt(w1.shape[1]) + b1) * gain
    return styles * styles_d


def test_loaded_layers_modulate_as_the_release_does(trained, tiny_kwargs):
    release = _to_release(trained.state_dict())
    G = pstyle_compat.build_pstyle3d_generator(release, G_kwargs=tiny_kwargs)
    torch.manual_seed(1)
    w, d = torch.randn(2, 512), torch.randn(2, 512)
    # torgb: no demodulation, so the gain on their styles_d matters.
    torgb = G.superresolution.block1.torgb
    rel = torch.nn.Module()
    rel.affine, rel.affine1 = torgb.affine, torch.nn.Linear(512, torgb.in_channels)
    rel.affine1.weight.data = release['superresolution.block1.torgb.affine1.weight']
    rel.affine1.bias.data = release['superresolution.block1.torgb.affine1.bias']
    x = torch.randn(2, torgb.in_channels, 8, 8)
    with torch.no_grad():
        expected = modulated_conv2d(x, torgb.weight, _release_modulation(rel, w, d, torgb.weight_gain),
                                    demodulate=False) + torgb.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(torgb(x, w, d=d, alpha=1.0), expected, rtol=1e-4, atol=1e-5)
    # conv layers: s * B(d), then demodulated; our t equals their B(d) at alpha = 1.
    conv = G.backbone.synthesis.b8.conv1
    with torch.no_grad():
        theirs = conv.affine(w) * (d @ release['backbone.synthesis.b8.conv1.affine1.weight'].t() / np.sqrt(512)
                                   + release['backbone.synthesis.b8.conv1.affine1.bias'])
        ours = conv.affine(w) * conv.affine1(d)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_mismatched_state_dicts_are_refused(trained, tiny_kwargs):
    release = _to_release(trained.state_dict())
    for change, message in (('extra', 'unknown keys'), ('missing', 'missing keys'), ('shape', 'shape mismatches')):
        state = dict(release)
        if change == 'extra':
            state['backbone.synthesis.b64.res0.conv.0.weight'] = torch.zeros(8, 8, 3, 3)
        elif change == 'missing':
            del state['backbone.synthesis.b16.res1.norm2.style.weight']
        else:
            state['backbone.synthesis.b4.conv1.affine1.bias'] = torch.zeros(7)
        with pytest.raises(ValueError, match=message):
            pstyle_compat.build_pstyle3d_generator(state, G_kwargs=tiny_kwargs)


def test_legacy_loader_reads_their_checkpoint_file(trained, tiny_kwargs, tmp_path, monkeypatch):
    monkeypatch.setattr(pstyle_compat, 'PSTYLE3D_G_KWARGS', tiny_kwargs)  # their 512 config is too big for a test
    path = tmp_path / 'pixar.pth'
    torch.save({'G_ema': _to_release(trained.state_dict())}, path)
    data = legacy.load_network_pkl(str(path))
    assert data['D'] is None and data['G'] is not data['G_ema']
    assert data['G_ema'].neural_rendering_resolution == pstyle_compat.PSTYLE3D_NEURAL_RENDERING_RESOLUTION
    ref = trained.state_dict()
    for key, value in data['G_ema'].state_dict().items():
        if key in ref and key != 'domain_codes' and not key.startswith('encoder.'):
            torch.testing.assert_close(value, ref[key], rtol=1e-6, atol=1e-6, msg=key)
    # Other files are left to the pickle loader.
    buf = io.BytesIO()
    torch.save({'G': torch.zeros(2)}, buf)
    buf.seek(0)
    assert pstyle_compat.read_pstyle3d_checkpoint(buf) is None and buf.tell() == 0
    assert pstyle_compat.read_pstyle3d_checkpoint(io.BytesIO(b'\x80\x04pickle')) is None


def test_pickles_that_record_the_release_mode_render_as_the_release(trained, tiny_kwargs, tiny_D, tmp_path):
    """A network pickle of their generator (legacy.py --source=their.pth) records modres_mode and loads
    with the release's ModRes forward: same renders as the generator it was written from."""
    G = pstyle_compat.build_pstyle3d_generator(_to_release(trained.state_dict()), G_kwargs=tiny_kwargs)
    assert G.init_kwargs['domain_kwargs']['modres_mode'] == pstyle_compat.RELEASE_MODRES_MODE
    path = tmp_path / 'release.pkl'
    atomic_write_pickle(dict(G=G, G_ema=G, D=tiny_D, training_set_kwargs=None, augment_pipe=None), str(path))
    loaded = legacy.load_network_pkl(str(path))['G_ema'].eval()
    blocks = [m for m in loaded.modules() if isinstance(m, ModRes)]
    assert blocks and all(type(m) is pstyle_compat.ReleaseModRes for m in blocks)
    x, d = torch.randn(1, blocks[0].channels, 4, 4), torch.randn(1, 512)
    assert torch.equal(blocks[0](x, d, 1.0), 2 * x)  # input + skip, whatever the trained branch says
    ws = G.mapping(torch.randn(1, G.z_dim), torch.zeros(1, 25))
    c = camera_label(0.2)
    code = torch.randn(1, G.backbone.num_ws, G.w_dim)
    with torch.no_grad():
        renders = []
        for net in (G, loaded):
            torch.manual_seed(0)  # the same ray jitter
            renders.append(net.synthesis(ws, c, domain=code, alpha=1, noise_mode='const')['image'])
    assert torch.equal(*renders)


def test_release_configuration_is_eg3d_ffhq512(ffhq512):
    eg3d = ffhq512['G_kwargs']
    ours = pstyle_compat.PSTYLE3D_G_KWARGS
    for key in ('z_dim', 'w_dim', 'c_dim', 'img_resolution', 'mapping_kwargs', 'channel_base', 'channel_max',
                'sr_num_fp16_res', 'sr_kwargs'):
        assert ours[key] == eg3d[key], key
    assert ours['rendering_kwargs']['superresolution_module'] == eg3d['rendering_kwargs']['superresolution_module']
