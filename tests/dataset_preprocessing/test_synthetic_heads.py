"""Synthetic heads: EG3D labels, exact depth, determinism, shared geometry across styles."""

import json
import math
import os
import zipfile

import numpy as np
import pytest

import camera_utils
from dataset_preprocessing import head_sdf, synthetic_heads
from training.dataset import ImageFolderDataset


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    """The same 6 heads in both styles at 32x32."""
    return synthetic_heads.make_synthetic_pair(str(tmp_path_factory.mktemp('heads')), 6, 32, seed=3)


def _labels(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read('dataset.json'))['labels'], json.loads(zf.read('heads.json'))


def test_labels_are_eg3d_cameras(pair):
    labels, heads = _labels(pair['natural'])
    assert [name for name, _ in labels] == [f'img{i:08d}.png' for i in range(6)]
    focal = 1 / (math.tan(18.837 * 3.14159 / 360) * 1.414)
    for (_, label), head in zip(labels, heads['heads']):
        label = np.array(label)
        cam2world, intrinsics = label[:16].reshape(4, 4), label[16:].reshape(3, 3)
        np.testing.assert_allclose(intrinsics, [[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1]], atol=1e-6)
        np.testing.assert_allclose(cam2world[:3, :3] @ cam2world[:3, :3].T, np.eye(3), atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(cam2world[:3, 3]), 2.7, atol=1e-5)
        # The optical axis passes through the pivot (0, 0, 0.2).
        to_pivot = np.array([0, 0, 0.2]) - cam2world[:3, 3]
        np.testing.assert_allclose(cam2world[:3, 2], to_pivot / np.linalg.norm(to_pivot), atol=1e-5)
        # Yaw: the camera's azimuth about the y axis (positive = camera on the +x side).
        assert abs(head['yaw']) <= 0.5 and abs(head['pitch']) <= 0.25
        np.testing.assert_allclose(math.atan2(cam2world[0, 3], cam2world[2, 3]), head['yaw'], atol=1e-5)
    dataset = ImageFolderDataset(pair['toon'], use_labels=True)
    assert dataset.image_shape == [3, 32, 32] and dataset.label_dim == 25


def _first_crossings(sdf, origins, dirs, t0=2.0, t1=3.4, n=2000):
    """Reference (M,): dense samples along each ray find the first sign change, bisection refines it."""
    ts = np.linspace(t0, t1, n)
    values = sdf((origins[:, None] + ts[None, :, None] * dirs[:, None]).reshape(-1, 3)).reshape(len(origins), n)
    inside = values < 0
    first = np.argmax(inside, axis=1)
    lo, hi = ts[np.maximum(first - 1, 0)], ts[first]
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        outside = sdf(origins + mid[:, None] * dirs) > 0
        lo, hi = np.where(outside, mid, lo), np.where(outside, hi, mid)
    return np.where(inside.any(axis=1), 0.5 * (lo + hi), np.inf)


def test_depth_is_the_ray_surface_distance(pair):
    labels, heads = _labels(pair['natural'])
    depths = synthetic_heads.load_depths(pair['natural'])
    assert depths.shape == (6, 32, 32) and depths.dtype == np.float32
    for index in (0, 4):
        label = np.array(labels[index][1])
        sdf = head_sdf.HeadSDF(head_sdf.HeadShape(**heads['heads'][index]['shape']))
        origins, dirs = synthetic_heads.pixel_rays(label[:16].reshape(4, 4), label[16:].reshape(3, 3), 32)
        depth = depths[index].reshape(-1)
        assert 0.2 < np.isfinite(depth).mean() < 0.9  # the head fills a good part of the frame
        pixels = np.arange(0, 32 * 32, 7)
        reference = _first_crossings(sdf, origins[pixels], dirs[pixels])
        both = np.isfinite(reference) & np.isfinite(depth[pixels])
        points = origins[pixels[both]] + reference[both, None] * dirs[pixels[both]]
        incidence = -np.sum(sdf.normals(points) * dirs[pixels[both]], axis=-1)
        error = np.abs(depth[pixels[both]] - reference[both])
        errors, grazing_errors = error[incidence > 0.2], error[incidence <= 0.2]
        mismatched = np.sum(np.isinf(reference) != np.isinf(depth[pixels]))  # only rays grazing the silhouette
        assert len(errors) > 30 and max(errors) < 1e-4 and np.median(errors) < 1e-6
        # A ray skimming the silhouette within 3e-4 (the tracing tolerance) counts as a hit there.
        assert len(grazing_errors) + mismatched <= 0.2 * len(errors) and max(grazing_errors, default=0) < 1e-2


def test_same_seed_same_dataset_and_styles_share_geometry(pair, tmp_path):
    again = synthetic_heads.make_synthetic_dataset(str(tmp_path / 'again.zip'), 'natural', 6, 32, seed=3)
    with zipfile.ZipFile(again) as a, zipfile.ZipFile(pair['natural']) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        assert all(a.read(n) == b.read(n) for n in a.namelist())
    np.testing.assert_array_equal(synthetic_heads.load_depths(pair['natural']),
                                  synthetic_heads.load_depths(pair['toon']))
    assert _labels(pair['natural'])[0] == _labels(pair['toon'])[0]
    other = synthetic_heads.make_synthetic_dataset(str(tmp_path / 'other.zip'), 'natural', 2, 32, seed=4)
    assert not np.array_equal(synthetic_heads.load_depths(other), synthetic_heads.load_depths(pair['natural'])[:2])


def test_toon_is_banded_with_outlines(pair):
    natural = ImageFolderDataset(pair['natural'])
    toon = ImageFolderDataset(pair['toon'])
    depth = synthetic_heads.load_depths(pair['toon'])[0]
    image = toon[0][0].transpose(1, 2, 0).reshape(-1, 3)
    head = np.isfinite(depth).reshape(-1)
    # Cel shading: the head has few distinct colours (albedos x 3 bands + outline); natural shading many.
    assert len({tuple(c) for c in image[head]}) < 40
    assert len({tuple(c) for c in natural[0][0].transpose(1, 2, 0).reshape(-1, 3)[head]}) > 100
    # The silhouette is drawn in the outline colour.
    silhouette = head & ~np.roll(np.isfinite(depth), 1, axis=1).reshape(-1)
    assert np.all(image[silhouette] == synthetic_heads._OUTLINE)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='style'):
        synthetic_heads.make_synthetic_dataset(str(tmp_path / 'a.zip'), 'pixar', 1, 16)
    path = synthetic_heads.make_synthetic_dataset(str(tmp_path / 'a.zip'), 'toon', 1, 16)
    with pytest.raises(FileExistsError, match='overwrite'):
        synthetic_heads.make_synthetic_dataset(path, 'toon', 1, 16)
    with pytest.raises(ValueError, match='25'):
        synthetic_heads.render_head(head_sdf.HeadShape(), np.zeros(16), 16, 'toon', {})


def test_interrupted_overwrite_keeps_the_old_zip(tmp_path, monkeypatch):
    path = synthetic_heads.make_synthetic_dataset(str(tmp_path / 'a.zip'), 'toon', 1, 16)
    before = open(path, 'rb').read()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic_heads, 'render_head', interrupted)
    with pytest.raises(KeyboardInterrupt):
        synthetic_heads.make_synthetic_dataset(path, 'natural', 2, 16, overwrite=True)
    assert open(path, 'rb').read() == before and os.listdir(tmp_path) == ['a.zip']
    (tmp_path / 'dir.zip').mkdir()
    with pytest.raises(ValueError, match='is a folder'):
        synthetic_heads.make_synthetic_dataset(str(tmp_path / 'dir.zip'), 'toon', 1, 16, overwrite=True)


def test_one_trace_shades_both_looks():
    shape, yaw, pitch, choice = synthetic_heads.sample_head(0, 2)
    label = camera_utils.camera_label(yaw, pitch)[0].numpy()
    traced = synthetic_heads.trace_head(shape, label, 24)
    for style in synthetic_heads.STYLES:
        image, depth = synthetic_heads.render_head(shape, label, 24, style, synthetic_heads.pick_colors(style, choice))
        np.testing.assert_array_equal(image, synthetic_heads.shade_head(traced, style,
                                                                        synthetic_heads.pick_colors(style, choice)))
        np.testing.assert_array_equal(depth, traced.depth.astype(np.float32))
    assert ((traced.material == head_sdf.BACKGROUND) == ~np.isfinite(traced.depth)).all()
    assert (traced.lambert[~np.isfinite(traced.depth)] == 0).all() and traced.lambert.max() <= 1
    with pytest.raises(ValueError, match='style must be one of'):
        synthetic_heads.shade_head(traced, 'sketch', {})
