"""Feature statistics, sharding and the dataset-statistics cache."""

import io
import os
import shutil
import zipfile

import numpy as np
import PIL.Image
import torch

from metrics.feature_stats import FeatureStats, compute_feature_stats_for_dataset, dataset_content_hash
from metrics.inception import InceptionV3
from metrics.metric_options import MetricOptions, shard


def test_feature_stats_mean_cov_and_max_items():
    x = np.random.default_rng(0).standard_normal((23, 5)).astype(np.float32)
    stats = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=20)
    for start in range(0, 23, 6):
        stats.append(x[start:start + 6])
    assert stats.is_full() and stats.num_items == 20
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, x[:20].mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cov, np.cov(x[:20], rowvar=False, bias=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stats.get_all(), x[:20])


def test_feature_stats_save_load_round_trip(tmp_path):
    x = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    stats = FeatureStats(capture_all=True, capture_mean_cov=True)
    stats.append(x)
    stats.save(str(tmp_path / 'stats.npz'))
    loaded = FeatureStats.load(str(tmp_path / 'stats.npz'), capture_all=True, capture_mean_cov=True)
    np.testing.assert_array_equal(loaded.get_all(), x)
    for a, b in zip(loaded.get_mean_cov(), stats.get_mean_cov()):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ['stats.npz']  # no temp file left behind


def test_shards_cover_every_item_once_and_merge_like_one_process():
    shards = [shard(range(10), 3, rank) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(10)) and shards[1] == [1, 4, 7]
    # Merging the per-process payloads (what merge_across_ranks gathers) equals one process over all items.
    x = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    merged = FeatureStats(capture_mean_cov=True)
    for indices in shards:
        part = FeatureStats(capture_mean_cov=True)
        part.append(x[indices])
        merged.add_payload(part.to_payload())  # the gathering step of merge_across_ranks, without processes
    whole = FeatureStats(capture_mean_cov=True)
    whole.append(x)
    for a, b in zip(merged.get_mean_cov(), whole.get_mean_cov()):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_dataset_stats_are_cached_by_content(heads, inception_file, cache_dir, tmp_path):
    opts = MetricOptions(dataset_kwargs=dict(path=heads['natural']), weights=dict(inception=inception_file))
    first = compute_feature_stats_for_dataset(opts, 'inception', capture_mean_cov=True)
    cached = os.listdir(os.path.join(cache_dir, 'gan-metrics'))
    assert len(cached) == 1
    # The cached statistics are those of the images, computed independently here.
    with torch.no_grad():
        features = InceptionV3(inception_file)(torch.from_numpy(_zip_images(heads['natural'])))[0].numpy()
    np.testing.assert_allclose(first.get_mean_cov()[0], features.mean(axis=0), rtol=1e-4, atol=1e-5)
    again = compute_feature_stats_for_dataset(opts, 'inception', capture_mean_cov=True)
    np.testing.assert_array_equal(again.get_mean_cov()[1], first.get_mean_cov()[1])
    # The key follows the content: same file name, other bytes -> another hash.
    changed = tmp_path / 'heads-natural.zip'
    shutil.copy(heads['toon'], changed)
    assert dataset_content_hash(str(changed)) != dataset_content_hash(heads['natural'])
    assert dataset_content_hash(heads['toon_dir']) == dataset_content_hash(heads['toon_dir'] + os.sep)
    # A folder's key covers the images the dataset reads, not other files next to them.
    folder = tmp_path / 'toon-images'
    shutil.copytree(heads['toon_dir'], folder)
    (folder / 'notes.txt').write_text('not an image')
    assert dataset_content_hash(str(folder)) == dataset_content_hash(heads['toon_dir'])
    PIL.Image.new('RGB', (32, 32)).save(folder / 'extra.png')
    assert dataset_content_hash(str(folder)) != dataset_content_hash(heads['toon_dir'])


def _zip_images(path: str) -> np.ndarray:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith('.png'))
        return np.stack([np.asarray(PIL.Image.open(io.BytesIO(zf.read(n))).convert('RGB')).transpose(2, 0, 1)
                         for n in names])
