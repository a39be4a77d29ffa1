"""Exemplar order, statistics and image grids of training/progress.py."""

import itertools
import json

import numpy as np
import PIL.Image
import pytest
import torch

from training import progress


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_is_epoch_permutations_and_resumes():
    s = progress.ExemplarSampler(5, seed=3)
    stream = _take(s, 15)
    for epoch in range(3):
        assert sorted(stream[5 * epoch:5 * epoch + 5]) == [0, 1, 2, 3, 4]
    assert stream[:5] != stream[5:10] or stream[5:10] != stream[10:15]
    # Restarting at position 7 continues the same stream.
    assert _take(progress.ExemplarSampler(5, seed=3, start=7), 8) == stream[7:15]


def test_sampler_splits_epochs_between_ranks():
    a = _take(progress.ExemplarSampler(6, rank=0, num_replicas=2, seed=1), 3)
    b = _take(progress.ExemplarSampler(6, rank=1, num_replicas=2, seed=1), 3)
    assert sorted(a + b) == list(range(6))
    with pytest.raises(ValueError, match='empty'):
        progress.ExemplarSampler(0)


def test_stats_collector_moments():
    stats = progress.StatsCollector(torch.device('cpu'))
    for v in (1.0, 2.0, 6.0):
        stats.add('Loss/G/style', torch.tensor(v))
    out = stats.flush()
    assert out['Loss/G/style']['num'] == 3
    assert out['Loss/G/style']['mean'] == pytest.approx(3.0)
    assert out['Loss/G/style']['std'] == pytest.approx(np.std([1.0, 2.0, 6.0]))
    assert stats.flush() == {}


def test_tick_logger_writes_jsonl(tmp_path):
    lines = []
    logger = progress.TickLogger(str(tmp_path), print_fn=lines.append)
    logger.tick(cur_tick=0, iteration=5, cur_nimg=5, sec_per_iter=0.25, total_sec=2.0,
                stats={'Loss/G/loss': dict(num=5, mean=1.5, std=0.1), 'Loss/G/geom': dict(num=2, mean=0.125, std=0)},
                device=torch.device('cpu'))
    logger.close()
    record = json.loads((tmp_path / 'stats.jsonl').read_text().splitlines()[0])
    assert record['Loss/G/loss']['mean'] == 1.5 and record['Progress/iteration'] == 5
    assert record['Timing/sec_per_iter'] == 0.25
    progress_line = lines[-1]
    assert 'iter 5' in progress_line and 's/iter 0.250' in progress_line and 'G 1.5 ' in progress_line
    assert 'geom 0.125 ' in progress_line and 'content' not in progress_line  # shown only when logged


def test_triples_grid_layout(tmp_path):
    content = -torch.ones(2, 3, 4, 4)
    exemplar = torch.zeros(2, 3, 4, 4)
    stylised = torch.ones(2, 3, 4, 4)
    path = str(tmp_path / 'grid.png')
    progress.save_triples_grid(path, content, exemplar, stylised)
    img = np.array(PIL.Image.open(path))
    assert img.shape == (8, 12, 3)
    np.testing.assert_array_equal(img[:, 0:4], 0)
    np.testing.assert_array_equal(img[:, 4:8], 128)
    np.testing.assert_array_equal(img[:, 8:12], 255)
    with pytest.raises(ValueError, match='share one'):
        progress.save_triples_grid(path, content, exemplar[:1], stylised)
