"""gen_videos.py: camera paths, keyframe interpolation, seed layout, and the CLI on a tiny network snapshot."""

import click
import numpy as np
import pytest
import scipy.interpolate

import gen_videos


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
