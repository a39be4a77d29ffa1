"""gen_videos.py: camera paths, keyframe interpolation, seed layout, and the CLI on a tiny network snapshot."""

import click
import imageio.v2 as imageio
import numpy as np
import pytest
import scipy.interpolate
import torch
from click.testing import CliRunner

import gen_videos
from training import inference
from tests.gen_network import build_tiny_generator, write_tiny_snapshot


def test_camera_paths():
    orbit = np.array(gen_videos.camera_path('orbit', 8, 18.837))
    np.testing.assert_allclose(orbit[0], [0.0, 0.2, 18.837], atol=1e-12)  # EG3D: yaw 0.35 sin, pitch -0.05+0.25 cos
    np.testing.assert_allclose(orbit[2], [0.35, -0.05, 18.837], atol=1e-12)
    yaw = np.array(gen_videos.camera_path('yaw', 4, 12.0))
    np.testing.assert_allclose(yaw[:, 0], [0, 0.5, 0, -0.5], atol=1e-12)
    np.testing.assert_allclose(yaw[:, 1:], [[0, 12.0]] * 4)
    zoom = np.array(gen_videos.camera_path('zoom', 4, 20.0))
    np.testing.assert_allclose(zoom[:, 2], [20.0, 16.0, 12.0, 16.0])
    np.testing.assert_allclose(zoom[:, :2], 0)
    static = gen_videos.camera_path('static', 5, 18.837)
    assert static == [(0.0, 0.0, 18.837)] * 5
    with pytest.raises(ValueError, match='unknown camera path "spin"'):
        gen_videos.camera_path('spin', 5, 18.837)


@pytest.mark.parametrize('num_keyframes', [2, 3])
def test_keyframe_weights_reproduce_eg3d_latent_spline(num_keyframes):
    w_frames, wraps = 5, 2
    ws = np.random.RandomState(0).randn(num_keyframes, 3, 4)
    # EG3D's interpolation of the latents themselves.
    x = np.arange(-num_keyframes * wraps, num_keyframes * (wraps + 1))
    spline = scipy.interpolate.interp1d(x, np.tile(ws, [wraps * 2 + 1, 1, 1]), kind='cubic', axis=0)
    ref = spline(np.arange(num_keyframes * w_frames) / w_frames)
    weights = gen_videos.keyframe_weights(num_keyframes, w_frames)
    assert weights.shape == (num_keyframes * w_frames, num_keyframes)
    np.testing.assert_allclose(np.einsum('tk,kab->tab', weights, ws), ref, atol=1e-10)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-10)
    np.testing.assert_allclose(weights[::w_frames], np.eye(num_keyframes), atol=1e-10)  # keyframes are exact


def test_grid_seeds_layout():
    np.testing.assert_array_equal(gen_videos.grid_seeds([0, 1, 2, 3], (2, 1), None), [[0, 2], [1, 3]])
    np.testing.assert_array_equal(gen_videos.grid_seeds([5, 6], (2, 2), 1), [[5, 6, 5, 6]])
    with pytest.raises(click.UsageError, match='3 seeds do not fill a 2x1 grid evenly'):
        gen_videos.grid_seeds([0, 1, 2], (2, 1), None)


# ----------------------------------------------------------------------------
# On the tiny fixture generator.


def _reference_render(G, seed, yaw, pitch, render_seed, **domain_kwargs):
    """What a single uncached G.synthesis call renders for `seed` from (yaw, pitch): (H, W, 3) uint8."""
    device = torch.device('cpu')
    conditioning = inference.generator_camera_label(G, 0.0, 0.0, device=device)
    c = inference.generator_camera_label(G, yaw, pitch, device=device)
    ws = G.mapping(inference.z_from_seed(seed, G.z_dim, device), conditioning, truncation_psi=0.7)
    torch.manual_seed(render_seed)
    with torch.no_grad():
        image = G.synthesis(ws, c, noise_mode='const', **domain_kwargs)['image']
    return inference.image_to_uint8(image)[0], ws


@pytest.fixture(scope='module')
def G():
    return build_tiny_generator(domain_names=['toon'])


def test_frames_reuse_planes_exactly_and_static_path_is_constant(G):
    ref, ws = _reference_render(G, 5, 0.0, 0.0, render_seed=0, domain='toon', alpha=0.7)
    cameras = [inference.generator_camera_label(G, y, p, f, torch.device('cpu'))
               for y, p, f in gen_videos.camera_path('static', 3, 18.837)]
    frames = list(gen_videos.render_frames(G, ws[None], cameras, gen_videos.keyframe_weights(1, 3), 'image',
                                           grid=(1, 1), domain='toon', alpha=0.7))
    assert len(frames) == 3
    np.testing.assert_array_equal(frames[0], ref)  # cached tri-planes render what an uncached call renders
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame, frames[0])


def test_keyframes_of_a_blended_video_match_direct_renders(G):
    ref0, ws0 = _reference_render(G, 1, 0.0, 0.0, render_seed=0)
    ref1, ws1 = _reference_render(G, 2, 0.0, 0.0, render_seed=0)
    ws_keys = torch.stack([ws0, ws1])  # (K=2, N=1, num_ws, w_dim)
    cameras = [inference.generator_camera_label(G, 0.0, 0.0, device=torch.device('cpu'))] * 4
    frames = list(gen_videos.render_frames(G, ws_keys, cameras, gen_videos.keyframe_weights(2, 2), 'image',
                                           grid=(1, 1)))
    assert np.abs(frames[0].astype(int) - ref0).max() <= 1  # spline weights are one-hot up to rounding
    assert np.abs(frames[2].astype(int) - ref1).max() <= 1
    assert np.abs(frames[1].astype(int) - ref0).mean() > 0.5  # an in-between frame is neither keyframe


@pytest.fixture(scope='module')
def network(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('gen_videos') / 'tiny.pkl')
    write_tiny_snapshot(path, domain_names=['toon'])
    return path


def test_cli_writes_mp4_with_expected_frames(network, tmp_path):
    result = CliRunner().invoke(gen_videos.generate_videos, [
        f'--network={network}', f'--outdir={tmp_path}', '--seeds=0-1', '--grid=2x1', '--w-frames=3',
        '--image-mode=image_depth', '--alpha=0,1', '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert 'Running on the CPU' in result.output
    for alpha in ('0.00', '1.00'):
        frames = imageio.mimread(str(tmp_path / f'seeds0-1_2x1_orbit_image_depth_toon_alpha{alpha}.mp4'))
        assert len(frames) == 3  # 1 keyframe per cell x 3 frames
        assert frames[0].shape == (32, 64, 3)  # depth at the neural rendering resolution, 2 cells side by side


@pytest.mark.parametrize('args, message', [
    (['--seeds=1,x'], "Invalid value for '--seeds': \"x\" in \"1,x\" is not a seed"),
    (['--alpha=one'], "Invalid value for '--alpha': \"one\" in \"one\" is not a number"),
    (['--grid=2'], "Invalid value for '--grid': \"2\" is not a grid size"),
    (['--network=nowhere.pkl'], 'network pickle "nowhere.pkl" does not exist'),
    (['--domain=oil'], 'unknown domain "oil"; domains stored in this network: toon'),
])
def test_bad_arguments_name_the_problem(network, tmp_path, args, message):
    result = CliRunner().invoke(gen_videos.generate_videos, [
        f'--network={network}', f'--outdir={tmp_path}', '--device=cpu', *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
