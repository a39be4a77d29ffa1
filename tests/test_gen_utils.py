"""gen_utils: option parsing, cameras, picture conversions (no network needed)."""

import click
import numpy as np
import pytest
import torch

import gen_utils
from training import inference


def _convert(param_type, value):
    return param_type.convert(value, None, None)


def test_seed_list_ranges_and_singles():
    assert _convert(gen_utils.SeedList(), '0-3,12, 7') == [0, 1, 2, 3, 12, 7]
    assert _convert(gen_utils.SeedList(), '5') == [5]


@pytest.mark.parametrize('bad, why', [('0-x', '"0-x" in "0-x" is not a seed'), ('3-1', 'is empty'),
                                      ('1,,2', '"" in "1,,2" is not a seed'), ('-1', 'is not a seed'),
                                      ('4294967296', 'below 2\\*\\*32')])
def test_seed_list_rejects_malformed(bad, why):
    with pytest.raises(click.BadParameter, match=why):
        _convert(gen_utils.SeedList(), bad)


def test_float_list():
    assert _convert(gen_utils.FloatList(), '0,0.5,1,-1e-1') == [0.0, 0.5, 1.0, -0.1]
    with pytest.raises(click.BadParameter, match='"half" in "0,half" is not a number'):
        _convert(gen_utils.FloatList(), '0,half')
    with pytest.raises(click.BadParameter, match='not a finite number'):
        _convert(gen_utils.FloatList(), 'nan')


def test_view_list_pairs_and_presets():
    assert _convert(gen_utils.ViewList(), '0:0,0.4:-0.1') == [(0.0, 0.0), (0.4, -0.1)]
    assert _convert(gen_utils.ViewList(), 'multi') == [(0.4, -0.2), (0.0, -0.2), (-0.4, -0.2)]
    assert _convert(gen_utils.ViewList(), 'front') == [(0.0, 0.0)]
    with pytest.raises(click.BadParameter, match='"0.4" is not a yaw:pitch pair'):
        _convert(gen_utils.ViewList(), '0:0,0.4')


def test_grid_size():
    assert _convert(gen_utils.GridSize(), '3x2') == (3, 2)
    for bad in ('3', '0x2', '2,2'):
        with pytest.raises(click.BadParameter, match='is not a grid size'):
            _convert(gen_utils.GridSize(), bad)


def test_missing_network_file_is_named(tmp_path):
    missing = str(tmp_path / 'nope.pkl')
    with pytest.raises(click.BadParameter, match='nope.pkl" does not exist'):
        gen_utils.resolve_network_path(missing)
    assert gen_utils.resolve_network_path('https://example.org/net.pkl') == 'https://example.org/net.pkl'


def test_z_from_seed_is_eg3d_draw():
    z = inference.z_from_seed(3, 512, torch.device('cpu'))
    np.testing.assert_array_equal(z.numpy(), np.random.RandomState(3).randn(1, 512).astype(np.float32))


def test_camera_label_matches_eg3d_fixture():
    cams = np.load('tests/fixtures/eg3d/cameras.npz')

    class _G:  # only rendering_kwargs is read
        rendering_kwargs = {'avg_camera_pivot': [0, 0, 0.2], 'avg_camera_radius': 2.7}

    for i, (yaw, pitch) in enumerate(zip(cams['yaws'], cams['pitches'])):
        c = inference.generator_camera_label(_G, float(yaw), float(pitch), device=torch.device('cpu'))
        np.testing.assert_allclose(c.numpy()[0], cams['c'][i], atol=1e-5)


def test_image_to_uint8_uses_eg3d_rounding():
    img = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.2]).reshape(1, 1, 1, 5)
    np.testing.assert_array_equal(inference.image_to_uint8(img)[0, 0, :, 0], [0, 64, 128, 255, 255])


def test_depth_to_unit_maps_ray_range():
    depth = torch.tensor([2.25, 2.775, 3.3]).reshape(1, 1, 1, 3)
    unit = inference.depth_to_unit(depth, {'ray_start': 2.25, 'ray_end': 3.3})
    np.testing.assert_allclose(unit.flatten().numpy(), [1.0, 0.5, 0.0], atol=1e-6)


def test_layout_grid_rows_and_columns():
    tiles = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(6)])
    grid = gen_utils.layout_grid(tiles, rows=2, cols=3)
    assert grid.shape == (4, 9, 1)
    np.testing.assert_array_equal(grid[::2, ::3, 0], [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match='a 2x2 grid needs 4 pictures, got 6'):
        gen_utils.layout_grid(tiles, rows=2, cols=2)
