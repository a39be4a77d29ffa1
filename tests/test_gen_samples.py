"""gen_samples.py: file names, argument errors, and the CLI on a tiny network snapshot."""

import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import gen_samples
import gen_utils
from training import inference
import shape_utils
from tests.gen_network import build_tiny_generator, write_tiny_snapshot


def test_sample_name():
    assert gen_samples.sample_name(3, 'pixar', 0.5, 0.4, -0.1) == 'seed0003_pixar_alpha0.50_yaw+0.40_pitch-0.10'
    assert gen_samples.sample_name(12, None, None, 0.0, 0.0) == 'seed0012_yaw+0.00_pitch+0.00'
    # Values that two decimals would round keep their digits, so distinct requests get distinct names.
    assert (gen_samples.sample_name(0, 'style', 0.001, 0.004, -1e-05)
            == 'seed0000_style_alpha0.001_yaw+0.004_pitch-1e-05')
    assert gen_samples.grid_name(3, 'style') == 'seed0003_style_grid'
    assert gen_samples.shape_name(3, None, None) == 'seed0003'


@pytest.mark.parametrize('args, message', [
    (['--seeds=0-x'], "Invalid value for '--seeds': \"0-x\" in \"0-x\" is not a seed"),
    (['--alpha=0,strong'], "Invalid value for '--alpha': \"strong\" in \"0,strong\" is not a number"),
    (['--views=0:0,left'], "Invalid value for '--views': \"left\" is not a yaw:pitch pair"),
    (['--network=missing.pkl'], "Invalid value for '--network': network pickle \"missing.pkl\" does not exist"),
])
def test_bad_arguments_name_the_problem(tmp_path, args, message):
    result = CliRunner().invoke(gen_samples.generate_images, [f'--outdir={tmp_path}', '--device=cpu', *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


# ----------------------------------------------------------------------------
# On a tiny network snapshot with two stored domains, loaded through --network like a user.

SEED = 3
VIEWS = [(0.0, 0.0), (0.4, -0.1)]


@pytest.fixture(scope='module')
def outputs(tmp_path_factory):
    """Run gen_samples.py once on the snapshot; returns the output folder."""
    root = tmp_path_factory.mktemp('gen_samples')
    network = str(root / 'tiny.pkl')
    write_tiny_snapshot(network, domain_names=['toon', 'sketch'])
    outdir = root / 'out'
    result = CliRunner().invoke(gen_samples.generate_images, [
        f'--network={network}', f'--outdir={outdir}', f'--seeds={SEED}', '--domain=sketch', '--alpha=0,1',
        '--views=0:0,0.4:-0.1', '--depth', '--shapes', '--shape-res=16', '--shape-level=0', '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert 'Running on the CPU' in result.output
    return network, outdir


def _png(path):
    return np.asarray(PIL.Image.open(path))


def test_writes_views_grid_depth_and_shapes(outputs):
    _, outdir = outputs
    for alpha in (0.0, 1.0):
        for yaw, pitch in VIEWS:
            stem = outdir / gen_samples.sample_name(SEED, 'sketch', alpha, yaw, pitch)
            assert _png(f'{stem}.png').shape == (128, 128, 3)
            depth = _png(f'{stem}_depth.png')
            assert depth.shape == (32, 32) and depth.dtype == np.uint16
    grid = _png(outdir / f'seed{SEED:04d}_sketch_grid.png')
    assert grid.shape == (2 * 128, 2 * 128, 3)  # rows: alpha 0, 1; columns: the two views
    np.testing.assert_array_equal(grid[128:, 128:],
                                  _png(outdir / (gen_samples.sample_name(SEED, 'sketch', 1.0, 0.4, -0.1) + '.png')))
    for alpha in ('0.00', '1.00'):
        assert os.path.getsize(outdir / f'seed{SEED:04d}_sketch_alpha{alpha}.mrc') == 1024 + 16 ** 3 * 4
        raw = (outdir / f'seed{SEED:04d}_sketch_alpha{alpha}.ply').read_bytes()
        header = raw[:raw.index(b'end_header')].decode('ascii').split('\n')
        num_verts = int(next(line for line in header if line.startswith('element vertex')).split()[-1])
        num_faces = int(next(line for line in header if line.startswith('element face')).split()[-1])
        assert num_verts > 0 and num_faces > 0
        assert len(raw) == raw.index(b'end_header\n') + 11 + num_verts * 12 + num_faces * 13


def test_alpha0_equals_plain_eg3d_and_alpha1_differs(outputs):
    G = build_tiny_generator()  # the same EG3D weights without the domain path
    device = torch.device('cpu')
    conditioning = inference.generator_camera_label(G, 0.0, 0.0, device=device)
    for yaw, pitch in VIEWS:
        c = inference.generator_camera_label(G, yaw, pitch, device=device)
        ws = G.mapping(inference.z_from_seed(SEED, G.z_dim, device), conditioning, truncation_psi=0.7,
                       truncation_cutoff=14)
        torch.manual_seed(SEED)
        with torch.no_grad():
            plain = inference.image_to_uint8(G.synthesis(ws, c, noise_mode='const')['image'])[0]
        natural = _png(outputs[1] / (gen_samples.sample_name(SEED, 'sketch', 0.0, yaw, pitch) + '.png'))
        styled = _png(outputs[1] / (gen_samples.sample_name(SEED, 'sketch', 1.0, yaw, pitch) + '.png'))
        np.testing.assert_array_equal(natural, plain)
        assert np.abs(styled.astype(int) - plain).mean() > 2


def test_unknown_domain_names_the_stored_ones(outputs, tmp_path):
    network, _ = outputs
    result = CliRunner().invoke(gen_samples.generate_images, [
        f'--network={network}', f'--outdir={tmp_path}', '--domain=oil', '--device=cpu'])
    assert result.exit_code == 2
    assert 'unknown domain "oil"; domains stored in this network: toon, sketch' in result.output


def test_exemplar_image_is_encoded_as_g_expects(outputs, tmp_path):
    network, _ = outputs
    rgb = np.random.RandomState(0).randint(0, 256, (40, 24, 3)).astype(np.uint8)
    PIL.Image.fromarray(rgb).save(tmp_path / 'style.png')
    exemplar = torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1)
    # The contract: the file becomes exactly this tensor.
    assert torch.equal(gen_utils.load_exemplar(str(tmp_path / 'style.png'), torch.device('cpu')), exemplar)
    result = CliRunner().invoke(gen_samples.generate_images, [
        f'--network={network}', f'--outdir={tmp_path}', f'--seeds={SEED}', f'--exemplar={tmp_path / "style.png"}',
        '--alpha=1', '--views=front', '--device=cpu'])
    assert result.exit_code == 0, result.output
    G = build_tiny_generator(domain_names=['toon', 'sketch'])
    device = torch.device('cpu')
    c = inference.generator_camera_label(G, 0.0, 0.0, device=device)
    ws = G.mapping(inference.z_from_seed(SEED, G.z_dim, device), c, truncation_psi=0.7, truncation_cutoff=14)
    torch.manual_seed(SEED)
    with torch.no_grad():
        ref = inference.image_to_uint8(G.synthesis(ws, c, noise_mode='const', domain=exemplar, alpha=1)['image'])[0]
    out = _png(f'{tmp_path / gen_samples.sample_name(SEED, "style", 1.0, 0.0, 0.0)}.png')
    # PyTorch's CPU reductions split work by thread count, so renders differ by ~1e-6 between thread
    # counts (1e-6 * 127.5 in code values), and some pixels of this render lie within 2e-5 of a
    # rounding step of image_to_uint8: a pixel may round one code value apart, never more.
    diff = np.abs(out.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).sum())


def test_density_volume_from_cached_planes_equals_sample_mixed():
    G = build_tiny_generator(domain_names=['toon'])
    device = torch.device('cpu')
    c = inference.generator_camera_label(G, 0.0, 0.0, device=device)
    ws = G.mapping(inference.z_from_seed(1, G.z_dim, device), c)
    kwargs = dict(domain='toon', alpha=0.5)
    volume = shape_utils.density_volume(G, G.synthesize_planes(ws, noise_mode='const', **kwargs), resolution=6,
                                        chunk_size=50)
    coords = torch.from_numpy(np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 6)] * 3, indexing='ij'), -1))
    coords = coords.reshape(1, -1, 3).float()
    directions = torch.zeros_like(coords)
    directions[..., 2] = -1
    with torch.no_grad():
        ref = G.sample_mixed(coords, directions, ws, noise_mode='const', **kwargs)['sigma']
    np.testing.assert_allclose(volume.ravel(), ref.flatten().numpy(), rtol=1e-5, atol=1e-5)
