"""Domain Adaptation Module: domain modulation, ModRes, their placement in the synthesis network, and
the DAM-enabled TriPlaneGenerator against the EG3D fixtures (bit-identical when fresh or at alpha 0).
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dnnlib
from tests.eg3d_fixtures import load_state
from training.dam_layers import ModRes, apply_domain_modulation, check_alpha, init_domain_affine_
from training.pstyle_compat import ReleaseModRes
from training.domain_adaptation import (copy_source_weights, enable_domain_adaptation, parse_domain_kwargs,
                                        with_domain_adaptation, without_domain_adaptation)
from training.layers import FullyConnectedLayer
from training.networks_stylegan2 import SynthesisNetwork

TINY_ENCODER = dict(img_resolution=32, channels=(16, 32, 32, 64), head_channels=32)

W_DIM = 16


def _affine1(in_channels=8, trained=False):
    affine = init_domain_affine_(FullyConnectedLayer(W_DIM, in_channels, bias_init=1))
    if trained:
        with torch.no_grad():
            affine.weight.normal_()
            affine.bias.normal_(1.0, 0.3)
    return affine


def test_fresh_domain_affine_is_the_identity_for_any_code_and_alpha():
    torch.manual_seed(0)
    affine = _affine1()
    styles = torch.randn(3, 8)
    d = torch.randn(3, W_DIM) * 10
    for alpha in (0.0, 0.3, 1.0, 2.5, -1.0):
        for gain in (1.0, 1 / np.sqrt(8)):
            assert torch.equal(apply_domain_modulation(styles, affine, d, alpha, gain), styles)
    assert apply_domain_modulation(styles, affine, d, 0.0) is styles
    assert apply_domain_modulation(styles, None, None, 1.0) is styles


def test_domain_modulation_is_linear_in_alpha():
    torch.manual_seed(1)
    affine = _affine1(trained=True)
    styles = torch.randn(3, 8)
    d = torch.randn(3, W_DIM)
    B = affine(d)
    for gain in (1.0, 0.25):
        t = {a: apply_domain_modulation(styles, affine, d, a, gain) / styles for a in (0.5, 1.0, 2.0)}
        torch.testing.assert_close(t[1.0], 1 + gain * (B - 1), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(t[0.5] - 1, (t[1.0] - 1) / 2, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(t[2.0] - 1, (t[1.0] - 1) * 2, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='without the domain path'):
        apply_domain_modulation(styles, None, d, 1.0)


def _modres_reference(block, x, d):
    """R(x, d) written out with plain torch ops."""
    s = F.linear(d, block.affine.weight, block.affine.bias)

    def adain(norm, h):
        gamma, beta = F.linear(s, norm.style.weight, norm.style.bias).chunk(2, dim=1)
        return gamma[:, :, None, None] * F.instance_norm(h, eps=1e-5) + beta[:, :, None, None]

    def conv(layer, h):
        h = F.conv2d(h, layer.weight / np.sqrt(h.shape[1] * 9), padding=1) + layer.bias[None, :, None, None]
        return F.leaky_relu(h, 0.2) * np.sqrt(2)

    return conv(block.conv2, adain(block.norm2, conv(block.conv, adain(block.norm, x))))


def test_fresh_modres_adds_exactly_zero():
    torch.manual_seed(2)
    block = ModRes(8, W_DIM)
    x, d = torch.randn(2, 8, 4, 4), torch.randn(2, W_DIM)
    assert torch.count_nonzero(block.residual(x, d)) == 0
    for alpha in (0.0, 1.0, 3.0):
        assert torch.equal(block(x, d, alpha), x)
    assert block(x, d, 0.0) is x and block(x, None, 1.0) is x


def test_trained_modres_matches_the_reference_and_scales_with_alpha():
    torch.manual_seed(3)
    block = ModRes(8, W_DIM)
    with torch.no_grad():
        block.conv2.weight.normal_()
        block.conv.bias.normal_()
    x, d = torch.randn(2, 8, 4, 4), torch.randn(2, W_DIM)
    ref = _modres_reference(block, x, d)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(block(x, d, 1.0) - x, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(block(x, d, 0.5) - x, 0.5 * ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(block(x, d, 2.0) - x, 2.0 * ref, rtol=1e-4, atol=1e-5)


def test_release_modres_returns_input_plus_skip():
    torch.manual_seed(4)
    block = ReleaseModRes(8, W_DIM)
    with torch.no_grad():
        block.conv2.weight.normal_()  # trained weights do not matter: the release discards the branch
    x, d = torch.randn(2, 8, 4, 4), torch.randn(2, W_DIM)
    assert torch.equal(block(x, d, 1.0), 2 * x)
    assert torch.equal(block(x, d, 0.5), 1.5 * x)
    assert torch.equal(block(x, d, 0.0), x)


def test_domain_kwargs_are_validated():
    kw = parse_domain_kwargs(dict(domain_names=['pixar', 'arcane']))
    assert kw.modres_max_res == 32 and kw.modres_mode == 'residual' and kw.encoder_kwargs is None
    assert parse_domain_kwargs(None) is None
    with pytest.raises(ValueError, match='unknown domain_kwargs'):
        parse_domain_kwargs(dict(domain_name=['pixar']))
    with pytest.raises(ValueError, match='distinct'):
        parse_domain_kwargs(dict(domain_names=['pixar', 'pixar']))
    with pytest.raises(ValueError, match='distinct'):
        parse_domain_kwargs(dict(domain_names='pixar'))
    with pytest.raises(ValueError, match='modres_mode'):
        parse_domain_kwargs(dict(modres_mode='double'))
    G_kwargs = dict(class_name='training.triplane.TriPlaneGenerator', z_dim=512)
    out = enable_domain_adaptation(G_kwargs, ['pixar'], sr_modres=True)
    assert out.domain_kwargs['domain_names'] == ['pixar'] and out.domain_kwargs['sr_modres'] is True
    assert 'domain_kwargs' not in G_kwargs


# ---------------------------------------------------------------------------------------------
# Placement in a small synthesis network (fast).

def _synthesis(seed=0, **dam):
    torch.manual_seed(seed)
    return SynthesisNetwork(w_dim=W_DIM, img_resolution=32, img_channels=3, channel_base=256, channel_max=16,
                            num_fp16_res=0, **dam).eval()


def _train_dam_(module, scale=0.5, seed=10):
    """Give every DAM tensor random values, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if any(part in ('affine1', 'res0', 'res1') for part in name.split('.')):
                p.add_(torch.randn(p.shape, generator=gen) * scale)


def test_modres_sits_after_the_convolutions_up_to_modres_max_res():
    net = _synthesis(use_dam=True, modres_max_res=16)
    for res in (4, 8, 16, 32):
        block = getattr(net, f'b{res}')
        assert (block.res1 is not None) == (res <= 16)
        assert (block.res0 is not None) == (8 <= res <= 16)  # b4 has no conv0
        layers = [block.conv1, block.torgb] + ([block.conv0] if res > 4 else [])
        assert all(layer.affine1.weight.shape == (layer.in_channels, W_DIM) for layer in layers)
    plain = _synthesis()
    assert all(k in net.state_dict() for k in plain.state_dict())
    assert not any(p in ('affine1', 'res0', 'res1') for k in plain.state_dict() for p in k.split('.'))


def test_alpha_zero_is_exact_and_the_style_grows_with_alpha():
    plain, net = _synthesis(), _synthesis(use_dam=True, modres_max_res=16)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in plain.state_dict().items())  # same seed, same EG3D
    _train_dam_(net)
    ws, code = torch.randn(2, net.num_ws, W_DIM), torch.randn(2, net.num_ws, W_DIM)
    with torch.no_grad():
        ref = plain(ws, noise_mode='const')
        assert torch.equal(net(ws, noise_mode='const'), ref)
        out = {a: net(ws, domain_ws=code, alpha=a, noise_mode='const') for a in (0.0, 0.25, 0.5, 1.0, 2.0)}
    assert torch.equal(out[0.0], ref)
    dist = [(out[a] - ref).norm().item() for a in (0.25, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(dist, dist[1:])) and dist[0] > 0


def test_each_layer_reads_its_own_code_entry():
    net = _synthesis(use_dam=True, modres_max_res=0)
    with torch.no_grad():
        net.b8.conv1.affine1.weight.normal_()  # only this layer listens to the code
    ws, code = torch.randn(1, net.num_ws, W_DIM), torch.randn(1, net.num_ws, W_DIM)
    with torch.no_grad():
        ref = net(ws, domain_ws=code, noise_mode='const')
        for idx, expect_change in ((1, False), (2, True), (3, False)):  # b8 reads entries 1 (conv0), 2, 3 (torgb)
            moved = code.clone()
            moved[:, idx] += 1
            changed = not torch.equal(net(ws, domain_ws=moved, noise_mode='const'), ref)
            assert changed == expect_change, idx
    with pytest.raises(ValueError, match='domain_ws'):
        net(ws, domain_ws=code[:, :3], noise_mode='const')


def test_training_mode_matches_inference_and_the_fresh_dam_gets_gradients():
    net = _synthesis(use_dam=True, modres_max_res=16)
    ws, code = torch.randn(2, net.num_ws, W_DIM), torch.randn(2, net.num_ws, W_DIM)
    out = net.train()(ws, domain_ws=code, noise_mode='const')  # training: non-fused modulated convolutions
    out.square().mean().backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert grads['b8.conv1.affine1.weight'].abs().max() > 0  # zero-initialised, still learns
    assert grads['b8.res1.conv2.weight'].abs().max() > 0
    assert grads['b16.torgb.affine1.bias'].abs().max() > 0
    trained = _synthesis(use_dam=True, modres_max_res=16)
    _train_dam_(trained)
    with torch.no_grad():
        fused = trained.eval()(ws, domain_ws=code, alpha=0.7, noise_mode='const')
        unfused = trained.train()(ws, domain_ws=code, alpha=0.7, noise_mode='const')
    torch.testing.assert_close(unfused, fused, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# The DAM-enabled TriPlaneGenerator with EG3D's tiny reference weights.

@pytest.fixture(scope='module')
def tiny(tiny_config, tiny_io):
    io = {k: torch.from_numpy(v) for k, v in tiny_io.items()}
    return dnnlib.EasyDict(G_kwargs=tiny_config['G_kwargs'], state=load_state('tiny_G_state.npz'), io=io)


@pytest.fixture(scope='module')
def dam_G(tiny, tiny_G):
    kwargs = enable_domain_adaptation(tiny.G_kwargs, ['pixar', 'arcane'], encoder_kwargs=TINY_ENCODER, sr_modres=True)
    G = dnnlib.util.construct_class_by_name(**kwargs).eval().requires_grad_(False)
    copy_source_weights(tiny_G, G)
    return G


def _render(G, tiny, **kwargs):
    torch.manual_seed(1234)  # the fixture's seed for the renderer's random draws
    with torch.no_grad():
        return G.synthesis(tiny.io['ws_psi07'], tiny.io['c'], neural_rendering_resolution=32, noise_mode='const',
                           **kwargs)


@pytest.fixture(scope='module')
def plain_render(tiny, tiny_G):
    return _render(tiny_G, tiny)


def test_dam_generator_has_eg3d_keys_plus_domain_ones(tiny, tiny_G, dam_G):
    eg3d = set(tiny.state)
    assert set(tiny_G.state_dict()) == eg3d
    extra = set(dam_G.state_dict()) - eg3d
    assert eg3d <= set(dam_G.state_dict())
    assert all(k == 'domain_codes' or k.startswith('encoder.') or
               any(p in ('affine1', 'res0', 'res1') for p in k.split('.')) for k in extra)
    assert dam_G.domain_codes.shape == (2, 14, 512) and dam_G.domain_names == ['pixar', 'arcane']
    assert 'superresolution.block0.res0.conv2.weight' in extra and 'backbone.synthesis.b32.res1.affine.bias' in extra
    assert not any(k.startswith('backbone.synthesis.b64.res') for k in extra)


def test_fresh_dam_renders_eg3d_bit_for_bit(tiny, dam_G, plain_render):
    code = torch.randn(2, 14, 512) * 3
    out = _render(dam_G, tiny, domain=code, alpha=1.5)
    for key in ('image', 'image_raw', 'image_depth'):
        assert torch.equal(out[key], plain_render[key]), key
    torch.testing.assert_close(out['image'], tiny.io['synthesis_image'], atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(out['image_raw'], tiny.io['synthesis_image_raw'], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out['image_depth'], tiny.io['synthesis_image_depth'], atol=1e-4, rtol=1e-4)


def test_trained_dam_is_eg3d_at_alpha_zero_and_stylises_at_alpha_one(tiny, dam_G, plain_render):
    G = copy.deepcopy(dam_G)
    _train_dam_(G, scale=0.05)
    G.set_domain_code('arcane', torch.randn(14, 512))
    at_zero = _render(G, tiny, domain='arcane', alpha=0.0)
    assert all(torch.equal(at_zero[k], plain_render[k]) for k in at_zero)
    at_one = _render(G, tiny, domain='arcane', alpha=1.0)
    assert (at_one['image'] - plain_render['image']).abs().max() > 1e-3


def test_domain_inputs_resolve_to_codes(dam_G, tiny_G):
    code = torch.randn(14, 512)
    dam_G.set_domain_code('arcane', code[None])
    assert torch.equal(dam_G.get_domain_code('arcane', 3), code.expand(3, 14, 512))
    assert torch.equal(dam_G.get_domain_code(code[None], 2), code.expand(2, 14, 512))
    img = torch.rand(1, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(dam_G.get_domain_code(img, 2), dam_G.encoder(img).expand(2, 14, 512))
    assert dam_G.get_domain_code(None, 2) is None and tiny_G.get_domain_code(None, 2) is None
    with pytest.raises(ValueError, match=r"unknown domain \"cubism\"; this generator knows \['pixar', 'arcane'\]"):
        dam_G.get_domain_code('cubism', 1)
    with pytest.raises(ValueError, match=r'\(N, 14, 512\)'):
        dam_G.get_domain_code(torch.zeros(2, 13, 512), 2)
    with pytest.raises(ValueError, match='batch 3'):
        dam_G.get_domain_code(torch.zeros(3, 14, 512), 2)
    with pytest.raises(ValueError, match=r'\(14, 512\)'):
        dam_G.set_domain_code('pixar', torch.zeros(512))
    with pytest.raises(ValueError, match='no domain path'):
        tiny_G.get_domain_code('pixar', 1)
    with pytest.raises(ValueError, match='finite'):
        check_alpha(float('nan'))


def test_exemplars_need_an_encoder_and_the_source_branch_sees_the_face(tiny):
    G = dnnlib.util.construct_class_by_name(**enable_domain_adaptation(tiny.G_kwargs, ['pixar']))
    assert G.encoder is None
    with pytest.raises(ValueError, match='encoder_kwargs'):
        G.get_domain_code(torch.zeros(1, 3, 32, 32), 1)
    G = dnnlib.util.construct_class_by_name(**enable_domain_adaptation(
        tiny.G_kwargs, [], encoder_kwargs=dict(TINY_ENCODER, source_branch=True))).eval()
    with torch.no_grad():
        G.encoder.source_proj.weight.normal_()
        img, ws = torch.rand(1, 3, 32, 32) * 2 - 1, torch.randn(2, 14, 512)
        code = G.get_domain_code(img, 2, source_ws=ws)
        torch.testing.assert_close(code, G.encoder(img.expand(2, -1, -1, -1), ws))
    assert not torch.equal(code[0], code[1])  # same exemplar, different faces


def test_sample_mixed_takes_the_domain(tiny, dam_G, tiny_G):
    ws = tiny.io['ws_psi07'][:1]
    coords = tiny.io['sample_coordinates'][:1, :50]
    with torch.no_grad():
        ref = tiny_G.sample_mixed(coords, coords, ws, noise_mode='const')['sigma']
        out = dam_G.sample_mixed(coords, coords, ws, noise_mode='const', domain='pixar', alpha=1.0)['sigma']
    assert torch.equal(out, ref)


def test_a_plain_generator_gets_a_domain_path_with_its_weights(tiny_G, dam_G):
    G = with_domain_adaptation(tiny_G, ['pixar'], modres_max_res=8)
    assert G.domain_names == ['pixar'] and G.backbone.synthesis.b16.res1 is None
    state = G.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in tiny_G.state_dict().items())
    assert G.rendering_kwargs == tiny_G.rendering_kwargs
    with pytest.raises(ValueError, match='do not fit'):
        copy_source_weights(dam_G, tiny_G)


def test_removing_the_domain_path_gives_the_eg3d_generator_back(tiny, dam_G, plain_render):
    G = copy.deepcopy(dam_G)
    _train_dam_(G, scale=0.05)
    G.neural_rendering_resolution = 32
    plain = without_domain_adaptation(G)
    assert set(plain.state_dict()) == set(tiny.state)
    assert getattr(plain, 'domain_kwargs', None) is None and plain.encoder is None
    assert 'domain_kwargs' not in plain.init_kwargs and plain.neural_rendering_resolution == 32
    out = _render(plain.eval(), tiny)
    assert all(torch.equal(out[k], plain_render[k]) for k in out)
    with pytest.raises(ValueError, match='no domain adaptation'):
        without_domain_adaptation(plain)
