"""The bundled demo network networks/pstyle3d-demo-synthetic.pkl (see docs/demo_network.md)."""

import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import gen_samples
import camera_utils
import gen_utils
import legacy
from training import inference
from dataset_preprocessing import synthetic_heads
from training.source_fit import DEMO_DOMAIN, DEMO_PRESET

DEMO_PATH = os.path.join(gen_utils.REPO_ROOT, gen_utils.DEMO_NETWORK)


@pytest.fixture(scope='module')
def G():
    return legacy.load_network_pkl(DEMO_PATH)['G_ema'].eval()


def test_demo_network_file_is_small_and_complete():
    assert os.path.getsize(DEMO_PATH) < 15 * 10 ** 6  # kept under 15 MB
    data = legacy.load_network_pkl(DEMO_PATH)
    G_state, G_ema_state = data['G'].state_dict(), data['G_ema'].state_dict()
    assert G_state.keys() == G_ema_state.keys()
    assert all(torch.equal(G_state[k], G_ema_state[k]) for k in G_state)  # G = G_ema: nothing is averaged
    assert data['D'].img_resolution == data['G_ema'].img_resolution == 128


def test_demo_network_renders_natural_and_toon(G):
    assert G.domain_names == [DEMO_DOMAIN] and G.encoder is not None
    assert G.domain_codes.abs().sum() > 0
    device = torch.device('cpu')
    c = inference.generator_camera_label(G, 0.0, -0.2, device=device)
    with torch.no_grad():
        ws = G.mapping(inference.z_from_seed(0, G.z_dim, device), c, truncation_psi=0.7)
        torch.manual_seed(0)
        natural = G.synthesis(ws, c, noise_mode='const', domain=DEMO_DOMAIN, alpha=0)
        torch.manual_seed(0)
        plain = G.synthesis(ws, c, noise_mode='const')
        torch.manual_seed(0)
        toon = G.synthesis(ws, c, noise_mode='const', domain=DEMO_DOMAIN, alpha=1)
    assert natural['image'].shape == toon['image'].shape == (1, 3, 128, 128)
    assert torch.isfinite(natural['image']).all() and torch.isfinite(toon['image']).all()
    torch.testing.assert_close(natural['image'], plain['image'], rtol=0, atol=0)  # alpha 0 is the source
    assert (toon['image'] - natural['image']).abs().mean() > 0.05
    # A head in front of the background: the centre is nearer than the corners.
    depth = natural['image_depth'][0, 0]
    assert depth[12:20, 12:20].mean() < depth[:4, :4].mean() - 0.1


def test_gen_samples_uses_the_demo_network_by_default(tmp_path):
    result = CliRunner().invoke(gen_samples.generate_images, ['--outdir', str(tmp_path), '--seeds', '0',
                                                              '--views', '0:0', '--device', 'cpu'])
    assert result.exit_code == 0, result.output
    assert f'using "{DEMO_DOMAIN}"' in result.output
    names = sorted(os.listdir(tmp_path))
    assert names == [f'seed0000_{DEMO_DOMAIN}_alpha0.00_yaw+0.00_pitch+0.00.png',
                     f'seed0000_{DEMO_DOMAIN}_alpha1.00_yaw+0.00_pitch+0.00.png', f'seed0000_{DEMO_DOMAIN}_grid.png']
    grid = np.asarray(PIL.Image.open(tmp_path / f'seed0000_{DEMO_DOMAIN}_grid.png'))
    assert grid.shape == (256, 128, 3)


def test_demo_network_encodes_a_toon_exemplar(G, tmp_path):
    """The bundled encoder turns one unseen toon head into a code that stylises like the stored domain."""
    shape, yaw, pitch, choice = synthetic_heads.sample_head(7, 0)  # not among the training exemplars (seed 1)
    image, _ = synthetic_heads.render_head(shape, camera_utils.camera_label(yaw, pitch)[0].numpy(), 128, 'toon',
                                           synthetic_heads.pick_colors('toon', choice))
    path = tmp_path / 'toon.png'
    PIL.Image.fromarray(image).save(path)
    device = torch.device('cpu')
    c = inference.generator_camera_label(G, 0.0, 0.0, device=device)
    renders = {}
    with torch.no_grad():
        ws = G.mapping(inference.z_from_seed(1, G.z_dim, device), c, truncation_psi=0.7)
        for name, domain, alpha in (('natural', None, 0), ('stored', DEMO_DOMAIN, 1),
                                    ('exemplar', gen_utils.load_exemplar(str(path), device), 1)):
            torch.manual_seed(0)
            renders[name] = G.synthesis(ws, c, noise_mode='const', domain=domain, alpha=alpha)['image']
    to_stored = (renders['exemplar'] - renders['stored']).abs().mean()
    to_natural = (renders['exemplar'] - renders['natural']).abs().mean()
    assert to_stored < 0.5 * to_natural, (float(to_stored), float(to_natural))

    result = CliRunner().invoke(gen_samples.generate_images, ['--outdir', str(tmp_path / 'out'), '--seeds', '1',
                                                              '--views', '0:0', '--exemplar', str(path),
                                                              '--device', 'cpu'])
    assert result.exit_code == 0, result.output
    assert len([n for n in os.listdir(tmp_path / 'out') if n.endswith('.png')]) == 3  # alpha 0, alpha 1, grid


def test_bundled_network_matches_the_demo_preset(G):
    """configs/networks/demo_synthetic.json describes the bundled generator (apart from its DAM and encoder)."""
    kwargs = dict(G.init_kwargs)
    preset = dict(DEMO_PRESET.G_kwargs)
    assert kwargs['domain_kwargs']['domain_names'] == [DEMO_DOMAIN]
    # the style run's fresh DAM (train.py --sr-modres=1 --modres-max-res=0), not the preset's
    assert kwargs['domain_kwargs']['modres_max_res'] == 0 and kwargs['domain_kwargs']['sr_modres'] is True
    for key in preset:
        if key not in ('class_name', 'domain_kwargs', 'rendering_kwargs'):
            assert kwargs[key] == preset[key], key
    assert ({k: v for k, v in G.rendering_kwargs.items() if k in preset['rendering_kwargs']}
            == preset['rendering_kwargs'])
    assert G.neural_rendering_resolution == DEMO_PRESET.neural_rendering_resolution
    assert preset['rendering_kwargs']['avg_camera_radius'] == camera_utils.CAMERA_RADIUS
    assert preset['rendering_kwargs']['avg_camera_pivot'] == list(camera_utils.CAMERA_PIVOT)
