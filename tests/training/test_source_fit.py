"""training/source_fit.py: data, losses and a few fitting steps on one tiny head."""

import math

import numpy as np
import pytest
import torch

import camera_utils
from dataset_preprocessing import head_sdf, synthetic_heads
from training import inference, source_fit


@pytest.fixture(scope='module')
def views():
    return source_fit.render_views(count=1, views_per_head=2, resolution=32, seed=0)


def test_render_views_pairs_and_cameras(views):
    assert views.natural.shape == views.toon.shape == (1, 2, 3, 32, 32)
    assert views.depth.shape == (1, 2, 32, 32) and views.labels.shape == (1, 2, 25)
    # The first view is the head's own dataset camera and image.
    _, yaw, pitch, choice = synthetic_heads.sample_head(0, 0)
    np.testing.assert_allclose(views.labels[0, 0].numpy(), camera_utils.camera_label(yaw, pitch)[0].numpy())
    image, depth = synthetic_heads.render_head(synthetic_heads.sample_head(0, 0)[0],
                                               camera_utils.camera_label(yaw, pitch)[0].numpy(),
                                               32, 'toon', synthetic_heads.pick_colors('toon', choice))
    np.testing.assert_allclose(views.toon[0, 0].permute(1, 2, 0).numpy(), image / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(views.depth[0, 0].numpy(), depth)
    # Head i's latent is the one gen_samples.py draws for seed i.
    torch.testing.assert_close(views.z[0], inference.z_from_seed(0, 512, torch.device('cpu'))[0])


def test_downsample_depth_block_means_and_background():
    depth = torch.tensor([[[1., 3., 2., 2.], [1., 3., 2., math.inf]]]).repeat(1, 2, 1)  # (1, 4, 4)
    out = source_fit.downsample_depth(depth, 2)
    assert out[0, 0, 0].item() == 2.0 and out[0, 1, 0].item() == 2.0
    assert math.isinf(out[0, 0, 1].item())  # a block touching the background is not supervised


def test_reconstruction_loss_values():
    target = torch.zeros(1, 3, 8, 8)
    depth = torch.full((1, 8, 8), 2.5)
    depth[:, :4] = math.inf
    out = dict(image=target + 0.5, image_raw=torch.full((1, 3, 4, 4), -0.25), image_depth=torch.full((1, 1, 4, 4), 2.0))
    loss = source_fit.reconstruction_loss(out, target, depth)
    assert loss['image'].item() == pytest.approx(0.5)
    assert loss['image_raw'].item() == pytest.approx(0.25)
    assert loss['depth'].item() == pytest.approx(0.5)  # only the lower (foreground) half counts
    assert loss['total'].item() == pytest.approx(0.5 + 0.25 + source_fit.DEPTH_WEIGHT * 0.5)
    heavier = source_fit.reconstruction_loss(out, target, depth, depth_weight=4.0)
    assert (heavier['depth'].item() == loss['depth'].item()
            and heavier['total'].item() == pytest.approx(0.5 + 0.25 + 2.0))


def test_fit_reduces_losses_and_stores_code(views):
    torch.manual_seed(0)
    G = source_fit.build_demo_generator(img_resolution=32, depth_samples=6)
    split = source_fit.split_parameters(G)
    assert split['dam'] and all(p.abs().sum() == 0 for p in split['dam'] if p.ndim == 2)  # affine1 weights start 0
    before = source_fit.mean_losses(G, views, [0])
    rows = source_fit.fit(G, views, iterations=6, batch_size=1, lr=1e-2, style_from=1, log_every=3)
    after = source_fit.mean_losses(G, views, [0])
    assert [r['iter'] for r in rows] == [3, 6]
    assert after['natural'] < 0.8 * before['natural']
    assert after['toon'] < 0.8 * before['toon']
    assert G.domain_codes.abs().sum() > 0  # the fitted code was stored
    with torch.no_grad():
        w = G.mapping(views.z, torch.zeros(1, 25))
    torch.testing.assert_close(G.backbone.mapping.w_avg, w[0, 0])  # w_avg = mean w of the (one) head


def test_build_rejects_bad_resolution():
    with pytest.raises(ValueError, match='multiple of 4'):
        source_fit.build_demo_generator(img_resolution=30)


def test_head_ws_truncates_towards_the_mean_of_the_heads():
    torch.manual_seed(0)
    G = source_fit.build_demo_generator(img_resolution=32, depth_samples=6)
    z = torch.stack([source_fit.seed_latent(i) for i in range(3)])
    c = torch.zeros(1, 25)
    with torch.no_grad():
        w = G.mapping(z, c.expand(3, -1), truncation_psi=1)  # (3, num_ws, w_dim)
        ws = source_fit.head_ws(G, z, torch.tensor([1]), c, truncation_psi=0.5)
    mean = w.mean(dim=0)
    torch.testing.assert_close(ws[0], mean + 0.5 * (w[1] - mean))
    torch.testing.assert_close(G.backbone.mapping.w_avg, mean[0])
    # What gen_samples.py draws for seed 1 at the same truncation is the fitted latent.
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(z[1:2], c, truncation_psi=0.5), ws)


def test_fit_at_a_truncation_lowers_its_own_loss():
    views2 = source_fit.render_views(count=2, views_per_head=1, resolution=32, seed=0)
    torch.manual_seed(0)
    G = source_fit.build_demo_generator(img_resolution=32, depth_samples=6)
    source_fit.update_w_avg(G, views2.z)
    before = source_fit.mean_losses(G, views2, [0, 1], with_style=False, truncation_psi=0.7)
    source_fit.fit(G, views2, iterations=6, batch_size=2, lr=1e-2, style_from=100, truncation_psi=0.7)
    after = source_fit.mean_losses(G, views2, [0, 1], with_style=False, truncation_psi=0.7)
    assert set(after) == {'natural', 'depth'}
    assert after['natural'] < 0.8 * before['natural']


def test_reconstruction_loss_edge_term():
    """'edge' is the L1 of neighbour differences: a vertical step of height 1 in one of three column gaps."""
    target = torch.zeros(1, 3, 4, 4)
    image = target.clone()
    image[..., 2:] = 1.0
    depth = torch.full((1, 4, 4), math.inf)
    out = dict(image=image, image_raw=torch.zeros(1, 3, 2, 2), image_depth=torch.zeros(1, 1, 2, 2))
    plain = source_fit.reconstruction_loss(out, target, depth)
    loss = source_fit.reconstruction_loss(out, target, depth, edge_weight=2.0)
    assert loss['edge'].item() == pytest.approx(1 / 3)
    assert loss['total'].item() == pytest.approx(plain['total'].item() + 2.0 / 3)
    assert plain['total'].item() == pytest.approx(0.5)  # image L1 only: no depth foreground, no edge weight
    # A constant offset has no edges.
    out['image'] = target + 0.3
    assert source_fit.reconstruction_loss(out, target, depth, edge_weight=2.0)['edge'].item() == pytest.approx(0)


def test_reconstruction_loss_detail_term():
    """'detail' is the image L1 over the masked pixels only (mean over them), whatever the mask's size."""
    target = torch.zeros(1, 3, 4, 4)
    image = target.clone()
    image[0, :, 0, 0] = 0.6  # inside the mask
    image[0, :, 3, 3] = 2.0  # outside it
    detail = torch.zeros(1, 4, 4, dtype=torch.bool)
    detail[0, 0, :2] = True
    depth = torch.full((1, 4, 4), math.inf)
    out = dict(image=image, image_raw=torch.zeros(1, 3, 2, 2), image_depth=torch.zeros(1, 1, 2, 2))
    plain = source_fit.reconstruction_loss(out, target, depth)
    loss = source_fit.reconstruction_loss(out, target, depth, detail=detail, detail_weight=3.0)
    assert loss['detail'].item() == pytest.approx(0.3)
    assert loss['total'].item() == pytest.approx(plain['total'].item() + 3.0 * 0.3)
    assert plain['detail'].item() == 0  # no mask: no term
    empty = source_fit.reconstruction_loss(out, target, depth, detail=torch.zeros_like(detail), detail_weight=3.0)
    assert empty['total'].item() == pytest.approx(plain['total'].item())


def test_detail_mask_is_the_eyes_and_lips(views):
    # The head's own camera at 32 px: two eyes and the lips, a small part of the face.
    traced = synthetic_heads.trace_head(synthetic_heads.sample_head(0, 0)[0], views.labels[0, 0].numpy(), 32)
    mask = views.detail[0, 0].numpy()
    np.testing.assert_array_equal(mask, np.isin(traced.material, source_fit.DETAIL_MATERIALS))
    assert views.detail.shape == (1, 2, 32, 32) and views.detail.dtype == torch.bool
    skin = traced.material == head_sdf.SKIN
    assert 4 <= mask.sum() <= 0.1 * skin.sum()
    assert (traced.material == head_sdf.PUPIL).any() and (traced.material == head_sdf.LIPS).any()
    # Pupils are the darkest pixels of the natural image.
    natural = views.natural[0, 0].mean(dim=0).numpy()
    assert natural[traced.material == head_sdf.PUPIL].mean() < natural[skin].mean() - 0.5
