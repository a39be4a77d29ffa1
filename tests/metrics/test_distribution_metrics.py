"""FID, KID, precision/recall and IS formulas against direct numpy / scipy computations."""

import numpy as np
import pytest
import scipy.linalg

from metrics.frechet_inception_distance import frechet_distance
from metrics.inception_score import inception_score
from metrics.kernel_inception_distance import kernel_distance
from metrics.precision_recall import precision_recall


def _gaussian_stats(x: np.ndarray):
    return x.mean(axis=0), np.cov(x, rowvar=False, bias=True)


def test_fid_matches_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200, 16))
    b = rng.standard_normal((150, 16)) @ rng.standard_normal((16, 16)) * 0.3 + 0.2
    (mu_a, s_a), (mu_b, s_b) = _gaussian_stats(a), _gaussian_stats(b)
    root = scipy.linalg.sqrtm(s_a @ s_b)
    reference = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root).real
    assert frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(reference, rel=1e-9)


def test_fid_of_known_gaussians_and_of_a_set_with_itself():
    # Commuting covariances: FID = |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    mu_a, mu_b = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s_a, s_b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    assert frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(5 + 1 + 0 + 4)
    x = np.random.default_rng(2).standard_normal((10, 64))  # fewer samples than dimensions: singular covariance
    assert abs(frechet_distance(*_gaussian_stats(x), *_gaussian_stats(x))) < 1e-9


def _kid_reference(real: np.ndarray, gen: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 over all pairs, written out term by term."""
    d = real.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m = len(real)
    xx = sum(k(gen[i], gen[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(gen[i], real[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_unbiased_mmd_when_subsets_are_whole_sets():
    rng = np.random.default_rng(3)
    real, gen = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.4
    # Subsets of size m = all items are permutations of the sets: every subset gives the full estimate.
    assert kernel_distance(real, gen, num_subsets=3, max_subset_size=12, seed=0) == pytest.approx(
        _kid_reference(real, gen), rel=1e-10)


def test_kid_is_unbiased_on_known_distributions():
    """For d = 1 and N(0, 1) vs N(mu, 1), MMD^2 = (E3p - E3q)^2 + 3 (E2p - E2q)^2 + 3 (E1p - E1q)^2."""
    mu = 0.5
    expected = (mu ** 3 + 3 * mu) ** 2 + 3 * mu ** 4 + 3 * mu ** 2
    rng = np.random.default_rng(4)
    shifted = [kernel_distance(rng.standard_normal((40, 1)), rng.standard_normal((40, 1)) + mu, num_subsets=1,
                               max_subset_size=40, seed=i) for i in range(400)]
    same = [kernel_distance(rng.standard_normal((40, 1)), rng.standard_normal((40, 1)), num_subsets=1,
                            max_subset_size=40, seed=i) for i in range(400)]
    assert np.mean(shifted) == pytest.approx(expected, rel=0.1)
    # Same distribution: the unbiased estimate averages to 0 (a biased one would stay above 0 by ~2/m).
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    assert min(same) < 0


def test_precision_recall_against_brute_force():
    rng = np.random.default_rng(5)
    real, gen = rng.standard_normal((30, 4)), rng.standard_normal((25, 4)) * 1.5 + 0.5

    def brute(manifold, probes, k=3):
        d_mm = np.linalg.norm(manifold[:, None] - manifold[None], axis=-1)
        radii = np.sort(d_mm, axis=1)[:, k]  # index 0 is the point itself
        d_pm = np.linalg.norm(probes[:, None] - manifold[None], axis=-1)
        return np.mean(np.any(d_pm <= radii[None], axis=1))

    result = precision_recall(real.astype(np.float32), gen.astype(np.float32), nhood_size=3, batch_size=7)
    assert result['precision'] == pytest.approx(brute(real, gen))
    assert result['recall'] == pytest.approx(brute(gen, real))
    assert precision_recall(real.astype(np.float32), real.astype(np.float32)) == dict(precision=1.0, recall=1.0)


def test_inception_score_of_known_distributions():
    uniform = np.full((20, 10), 0.1)
    assert inception_score(uniform, num_splits=2) == pytest.approx((1.0, 0.0))
    # Each split: 5 confident predictions spread over 5 classes -> IS = 5.
    confident = np.full((10, 1008), 1e-12)
    confident[np.arange(10), np.arange(10) % 5] = 1.0
    mean, std = inception_score(confident, num_splits=2)
    assert mean == pytest.approx(5.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
