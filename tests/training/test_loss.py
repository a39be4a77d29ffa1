"""Loss terms of training/loss.py against hand-computed references."""

import numpy as np
import pytest
import torch

import configs
import dnnlib
from camera_utils import camera_label
from training import loss as L
from training.domain_adaptation import with_domain_adaptation
from training.perceptual import IdentityEncoder, VGG19Features

pytestmark = pytest.mark.usefixtures('single_cpu_thread')


def _np_stats(x: np.ndarray, eps: float = 1e-5):
    mean = x.mean(axis=(2, 3))
    std = np.sqrt(x.var(axis=(2, 3)) + eps)
    return mean, std


def test_channel_stats_match_numpy():
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, std = L.channel_stats(x)
    ref_mean, ref_std = _np_stats(x.numpy())
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-12)
    with pytest.raises(ValueError, match='feature map'):
        L.channel_stats(x[0])


def test_adain_style_loss_is_sum_of_mean_and_std_mse():
    gen = torch.Generator().manual_seed(1)
    feats = {name: torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64) for name in L.STYLE_LAYERS}
    target = {name: 3 * torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64) + 1 for name in L.STYLE_LAYERS}
    ref = 0.0
    for name in L.STYLE_LAYERS:
        m, s = _np_stats(feats[name].numpy())
        tm, ts = _np_stats(target[name].numpy())
        ref += ((m - tm) ** 2).mean() + ((s - ts) ** 2).mean()
    assert float(L.adain_style_loss(feats, target)) == pytest.approx(ref, rel=1e-12)
    # A spatial permutation keeps every channel's statistics: loss 0.
    shuffled = {name: feats[name].flip(2).transpose(2, 3) for name in L.STYLE_LAYERS}
    assert float(L.adain_style_loss(feats, shuffled)) == pytest.approx(0.0, abs=1e-24)


def test_identity_loss_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    # cos = 0 for the first pair, 1 for the second -> mean(1 - cos) = 0.5.
    assert float(L.identity_loss(a, b)) == pytest.approx(0.5, abs=1e-7)
    with pytest.raises(ValueError, match=r'\(N, D\)'):
        L.identity_loss(a, b[:, :1])


def test_r1_penalty_dual_of_linear_discriminator():
    gen = torch.Generator().manual_seed(2)
    wa = torch.randn(1, 3, 8, 8, generator=gen)
    wb = torch.randn(1, 3, 4, 4, generator=gen)
    image = torch.randn(2, 3, 8, 8, generator=gen).requires_grad_(True)
    raw = torch.randn(2, 3, 4, 4, generator=gen).requires_grad_(True)
    logits = (image * wa).sum([1, 2, 3]) + (raw * wb).sum([1, 2, 3])
    penalty = L.r1_penalty_dual(logits, image, raw)
    expected = float(wa.square().sum() + wb.square().sum())
    np.testing.assert_allclose(penalty.detach().numpy(), [expected, expected], rtol=1e-6)


def test_filtered_resizing_averages_blocks():
    # Antialiased 4x downsampling keeps a constant image constant.
    img = torch.ones(1, 3, 16, 16)
    out = L.filtered_resizing(img, 4)
    assert out.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(out.numpy(), 1.0, rtol=1e-6)
    ramp = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16).expand(1, 1, 16, 16)
    # Block means of a linear ramp are the ramp at the block centres (x = 1.5, 5.5, 9.5, 13.5),
    # except at the borders where the antialiasing filter is clipped.
    mid = L.filtered_resizing(ramp, 4)[0, 0, 1, 1:3]
    np.testing.assert_allclose(mid.numpy(), [5.5, 9.5], atol=1e-5)


@pytest.fixture(scope='module')
def tiny_nets():
    preset = configs.load_preset('tiny')
    torch.manual_seed(0)
    G_src = dnnlib.util.construct_class_by_name(**preset.G_kwargs).eval().requires_grad_(False)
    G = with_domain_adaptation(G_src, ['synthetic'], **preset.domain_kwargs)
    G.encoder.eval()
    D = dnnlib.util.construct_class_by_name(**preset.D_kwargs)
    vgg = VGG19Features(allow_random_weights=True)
    arcface = IdentityEncoder(allow_random_weights=True)
    cam = camera_label(0.2)
    ws = G_src.mapping(torch.randn([1, 512], generator=torch.Generator().manual_seed(1)), cam).detach()
    exemplar = torch.rand([1, 3, 128, 128], generator=torch.Generator().manual_seed(2)) * 2 - 1
    return dict(G=G, G_src=G_src, D=D, vgg=vgg, arcface=arcface, ws=ws, c=cam, exemplar=exemplar,
                nrr=preset.neural_rendering_resolution)


def test_generator_losses_of_a_fresh_dam_generator(tiny_nets):
    # A fresh DAM renders the source (both renders draw the same ray samples): content and identity
    # losses vanish, the total is the weighted sum of the terms, the style term matches a direct
    # computation.
    n = tiny_nets
    loss = L.PStyleLoss(G=n['G'], D=n['D'], G_src=n['G_src'], vgg=n['vgg'], arcface=n['arcface'],
                        neural_rendering_resolution=n['nrr'], geom_weight=1.0)
    torch.manual_seed(5)
    stats, renders = loss.accumulate_gradients('Gmain', n['exemplar'], n['c'], n['ws'], n['c'])
    assert float(stats['Loss/G/content']) < 1e-10
    assert float(stats['Loss/G/id']) == pytest.approx(0.0, abs=1e-6)
    total = 0.7 * stats['Loss/G/adv'] + stats['Loss/G/content'] + stats['Loss/G/style'] + 0.5 * stats['Loss/G/id']
    assert float(stats['Loss/G/loss']) == pytest.approx(float(total), rel=1e-6)
    torch.testing.assert_close(renders['fake']['image'], renders['content'], atol=1e-5, rtol=0)
    with torch.no_grad():
        ref_style = L.adain_style_loss(n['vgg'](renders['content']), n['vgg'](n['exemplar']))
    assert float(stats['Loss/G/style']) == pytest.approx(float(ref_style), rel=1e-5)
    # Gradients reach the domain path (the point of training it).
    grads = [p.grad for name, p in n['G'].named_parameters() if 'affine1' in name and p.grad is not None]
    assert grads and max(float(g.abs().max()) for g in grads) > 0


def test_density_regulariser_matches_direct_computation(tiny_nets):
    n = tiny_nets
    loss = L.PStyleLoss(G=n['G'], D=n['D'], G_src=n['G_src'], vgg=n['vgg'], arcface=None, id_weight=0,
                        neural_rendering_resolution=n['nrr'], density_reg_points=50, geom_weight=1.0)
    torch.manual_seed(7)
    stats, _ = loss.accumulate_gradients('Greg', n['exemplar'], n['c'], n['ws'], n['c'])
    torch.manual_seed(7)
    points = torch.rand([1, 50, 3]) * 2 - 1
    perturbed = points + torch.randn_like(points) * n['G'].rendering_kwargs['density_reg_p_dist']
    coords = torch.cat([points, perturbed], dim=1)
    with torch.no_grad():
        sigma = n['G_src'].sample_mixed(coords, torch.randn_like(coords), n['ws'])['sigma']
    expected = (sigma[:, :50] - sigma[:, 50:]).abs().mean()
    # The loss runs G with autograd (NCHW convolutions), this direct computation without (channels-last):
    # float rounding of the tri-planes, magnified by differencing nearby densities (1.3e-5 seen).
    assert float(stats['Loss/G/density_reg']) == pytest.approx(float(expected), rel=1e-4)
    assert float(stats['Loss/G/geom']) < 1e-6  # fresh DAM: the source's densities (up to fused-conv rounding)


def test_discriminator_r1_uses_raw_resized_exemplar(tiny_nets):
    n = tiny_nets
    loss = L.PStyleLoss(G=n['G'], D=n['D'], G_src=n['G_src'], vgg=n['vgg'], arcface=None, id_weight=0,
                        neural_rendering_resolution=n['nrr'])
    stats, _ = loss.accumulate_gradients('Dreg', n['exemplar'], n['c'], n['ws'], n['c'])
    image = n['exemplar'].clone().requires_grad_(True)
    raw = L.filtered_resizing(n['exemplar'], n['nrr']).requires_grad_(True)
    logits = n['D']({'image': image, 'image_raw': raw}, n['c'])
    penalty = L.r1_penalty_dual(logits, image, raw)
    assert float(stats['Loss/D/r1']) == pytest.approx(float(penalty.detach().mean() * 2.5), rel=1e-5)
    with pytest.raises(ValueError, match='needs the stylised render'):
        loss.accumulate_gradients('Dmain', n['exemplar'], n['c'], n['ws'], n['c'])
    with pytest.raises(ValueError, match='unknown phase'):
        loss.accumulate_gradients('Gfoo', n['exemplar'], n['c'], n['ws'], n['c'])
