"""The bundled demo network networks/pstyle3d-demo-synthetic.pkl (see docs/demo_network.md)."""

import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import gen_samples
import gen_utils
import legacy
from training import source_fit

DEMO_PATH = os.path.join(gen_utils.REPO_ROOT, gen_utils.DEMO_NETWORK)


@pytest.fixture(scope='module')
def G():
    return legacy.load_network_pkl(DEMO_PATH)['G_ema'].eval()


def test_demo_network_file_is_small_and_complete():
    assert os.path.getsize(DEMO_PATH) < 10 * 2 ** 20
    data = legacy.load_network_pkl(DEMO_PATH)
    G_state, G_ema_state = data['G'].state_dict(), data['G_ema'].state_dict()
    assert G_state.keys() == G_ema_state.keys()
    assert all(torch.equal(G_state[k], G_ema_state[k]) for k in G_state)  # G = G_ema: nothing is averaged
    assert data['D'].img_resolution == data['G_ema'].img_resolution == 128


def test_demo_network_renders_natural_and_toon(G):
    assert G.domain_names == [source_fit.DEMO_DOMAIN]
    assert G.domain_codes.abs().sum() > 0
    device = torch.device('cpu')
    c = gen_utils.camera_label(G, 0.0, -0.2, 18.837, device)
    with torch.no_grad():
        ws = G.mapping(gen_utils.z_from_seed(0, G.z_dim, device), c, truncation_psi=0.7)
        torch.manual_seed(0)
        natural = G.synthesis(ws, c, noise_mode='const', domain='toon', alpha=0)
        torch.manual_seed(0)
        plain = G.synthesis(ws, c, noise_mode='const')
        torch.manual_seed(0)
        toon = G.synthesis(ws, c, noise_mode='const', domain='toon', alpha=1)
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
    assert 'using "toon"' in result.output
    names = sorted(os.listdir(tmp_path))
    assert names == ['seed0000_alpha0.00_yaw+0.00_pitch+0.00.png', 'seed0000_alpha1.00_yaw+0.00_pitch+0.00.png',
                     'seed0000_grid.png']
    grid = np.asarray(PIL.Image.open(tmp_path / 'seed0000_grid.png'))
    assert grid.shape == (256, 128, 3)
