"""The 3-D and stylisation metrics on the tiny test generator (cameras from the synthetic heads' labels)."""

import json

import numpy as np
import pytest
import torch

from metrics import geometry_preservation, identity_similarity, metric_main, multiview_consistency
from metrics.detectors import extract_features
from metrics.feature_stats import compute_feature_stats_for_generator
from metrics.image_sources import ImageFolder, batch_seed, dataset_labels, latents_and_cameras
from training.inference import seeded_rng
from metrics.metric_options import MetricOptions
from tests.gen_network import build_tiny_generator
from training.dataset import ImageFolderDataset


@pytest.fixture(scope='module')
def tiny_styled():
    return build_tiny_generator(domain_names=('toon',))


@pytest.fixture(scope='module')
def tiny_plain():
    return build_tiny_generator()


def _opts(G, heads, **kwargs):
    return MetricOptions(G=G, dataset_kwargs=dict(path=heads['natural']), batch_size=2, allow_random_weights=True,
                         **kwargs)


def test_multiview_is_repeatable(tiny_styled, heads):
    opts = _opts(tiny_styled, heads, G_kwargs=dict(domain='toon'))
    a = multiview_consistency.compute_multiview(opts, num_gen=2)
    b = multiview_consistency.compute_multiview(_opts(tiny_styled, heads, G_kwargs=dict(domain='toon')), num_gen=2)
    assert a == b and opts.num_images == dict(gen=2)
    assert 0 < a['photo'] < 0.5 and 0 < a['depth'] <= 0.1 and 0 < a['visible'] <= 1


def test_geometry_is_zero_without_style_and_grows_with_it(tiny_styled, tiny_plain, heads):
    same = geometry_preservation.compute_geometry(_opts(tiny_styled, heads, G_kwargs=dict(domain='toon', alpha=0)), 1)
    assert same == dict(depth=0.0, density=0.0)
    styled = geometry_preservation.compute_geometry(_opts(tiny_styled, heads, G_kwargs=dict(domain='toon')), 1)
    assert styled['depth'] > 1e-4 and styled['density'] > 1e-3
    # Against the separate source network: alpha 0 of the DAM network is exactly that network.
    source = geometry_preservation.compute_geometry(
        _opts(tiny_styled, heads, G_kwargs=dict(domain='toon', alpha=0), G_source=tiny_plain), 1)
    assert source['depth'] < 1e-6 and source['density'] < 1e-5


def test_identity_is_one_without_style(tiny_styled, heads):
    same = identity_similarity.compute_identity(_opts(tiny_styled, heads, G_kwargs=dict(domain='toon', alpha=0)), 1)
    assert same == pytest.approx(1.0, abs=1e-5)
    styled = identity_similarity.compute_identity(_opts(tiny_styled, heads, G_kwargs=dict(domain='toon')), 1)
    assert -1 <= styled < 0.999


def test_stylisation_metrics_need_a_style_and_render_metrics_need_a_network(tiny_plain, heads):
    with pytest.raises(ValueError, match='natural and stylised'):
        identity_similarity.compute_identity(_opts(tiny_plain, heads), 1)
    with pytest.raises(ValueError, match='style_fid5k_full renders stylised samples'):
        metric_main.calc_metric('style_fid5k_full', G=tiny_plain, dataset_kwargs=dict(path=heads['toon']))
    folder = ImageFolder(heads['toon_dir'])
    with pytest.raises(ValueError, match='multiview1k renders views of a network'):
        metric_main.calc_metric('multiview1k', image_folder=folder, dataset_kwargs=dict(path=heads['toon']))


def test_metric_results_and_report_lines(tmp_path):
    line = metric_main.report_metric(dict(results=dict(fid50k_full=1.5), metric='fid50k_full', total_time=2.0,
                                          total_time_str='2s', num_gpus=1, num_images=dict(real=4, gen=4)),
                                     run_dir=str(tmp_path), snapshot_pkl=None)
    record = json.loads(line)
    assert record['results'] == dict(fid50k_full=1.5) and record['snapshot_pkl'] is None and 'timestamp' in record
    assert (tmp_path / 'metric-fid50k_full.jsonl').read_text() == line + '\n'
    assert [metric_main.format_time(s) for s in (5, 125, 3725)] == ['5s', '2m 05s', '1h 02m 05s']
    assert np.all([metric_main.is_valid_metric(m) for m in metric_main.DISTRIBUTION_METRICS])


def test_generator_samples_use_seeded_latents_and_dataset_cameras(tiny_styled, heads, inception_file):
    opts = _opts(tiny_styled, heads, G_kwargs=dict(domain='toon'), weights=dict(inception=inception_file))
    labels = dataset_labels(opts)
    np.testing.assert_array_equal(labels, np.stack([ImageFolderDataset(heads['natural'], use_labels=True).get_label(i)
                                                    for i in range(4)]))
    z, c = latents_and_cameras(opts, labels, [5, 7])
    for row, item in enumerate([5, 7]):  # item i: z and the label index from default_rng([seed, i])
        rng = np.random.default_rng([0, item])
        np.testing.assert_allclose(z[row].numpy(), rng.standard_normal(512).astype(np.float32))
        np.testing.assert_array_equal(c[row].numpy(), labels[rng.integers(4)])
    stats = compute_feature_stats_for_generator(opts, 'inception', 2, capture_all=True)
    assert stats.get_all().shape == (2, 2048) and opts.num_images == dict(gen=2)
    # Sample items 0 and 1 are what G renders for their latents and cameras (uint8 as EG3D rounds).
    z, c = latents_and_cameras(opts, labels, [0, 1])
    with torch.no_grad(), seeded_rng(opts.device, batch_seed(opts, 0)):
        images = (tiny_styled(z, c, domain='toon')['image'] * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    features = extract_features(opts, 'inception', images).numpy()
    np.testing.assert_allclose(stats.get_all(), features, rtol=1e-5, atol=1e-5)
