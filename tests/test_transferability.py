"""tunelab.advice.transferability: LogME and H-score on synthetic features with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from tunelab.advice.transferability import h_score, logme


def _blobs(seed: int, n: int = 400, d: int = 24, k: int = 4, separation: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features whose class means differ by ``separation`` along one axis per class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return rng.normal(size=(n, d)) + separation * np.eye(k, d)[y], y


@pytest.mark.parametrize("score", [logme, h_score, lambda f, y: h_score(f, y, shrinkage=False)])
def test_separated_classes_rank_above_shuffled_labels(score):
    for seed in range(3):
        features, y = _blobs(seed)
        shuffled = np.random.default_rng(100 + seed).permutation(y)
        assert score(features, y) > score(features, shuffled)


def test_scores_grow_with_class_separation():
    weak, y = _blobs(0, separation=0.5)
    strong = weak + 1.5 * np.eye(4, 24)[y]
    assert logme(strong, y) > logme(weak, y)
    assert h_score(strong, y) > h_score(weak, y)


def test_logme_is_invariant_to_label_permutation():
    features, y = _blobs(1)
    relabelled = np.array([2, 3, 1, 0])[y]
    as_text = np.array(["sport", "tech", "news", "art"])[y]
    assert logme(features, relabelled) == pytest.approx(logme(features, y), rel=1e-10)
    assert logme(features, as_text) == pytest.approx(logme(features, y), rel=1e-10)


@pytest.mark.parametrize("shrinkage", [True, False])
def test_h_score_is_invariant_to_feature_scale(shrinkage):
    features, y = _blobs(2)
    base = h_score(features, y, shrinkage=shrinkage)
    for scale in (1e-3, 7.0, 1e4):
        assert h_score(scale * features, y, shrinkage=shrinkage) == pytest.approx(base, rel=1e-8)


def test_h_score_known_value_in_one_dimension():
    # Two equal classes at -mu and +mu with noise sd sigma: between / total variance = mu^2 / (mu^2 + sigma^2).
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 20_000)
    f = (np.where(y == 1, 1.0, -1.0) * 1.5 + rng.normal(0, 1.0, y.size))[:, None]
    assert h_score(f, y, shrinkage=False) == pytest.approx(1.5**2 / (1.5**2 + 1.0), abs=0.01)


def test_shrinkage_tames_h_score_with_fewer_examples_than_dimensions():
    # 40 examples in 100 dimensions, labels carrying no signal: the unshrunk score sits at its maximum
    # (k - 1 = 1: whitened features separate any labelling), the shrunk one stays small.
    rng = np.random.default_rng(4)
    features, y = rng.normal(size=(40, 100)), rng.integers(0, 2, 40)
    assert h_score(features, y, shrinkage=False) == pytest.approx(1.0)
    assert h_score(features, y) < 0.5


def _direct_log_evidence(features: np.ndarray, t: np.ndarray) -> float:
    """max over (alpha, beta) of log N(t | 0, I / beta + F F' / alpha) / n, by a generic optimiser."""
    n = t.size

    def negative(log_ab: np.ndarray) -> float:
        alpha, beta = np.exp(log_ab)
        cov = np.eye(n) / beta + features @ features.T / alpha
        _, logdet = np.linalg.slogdet(cov)
        return 0.5 * (logdet + t @ np.linalg.solve(cov, t) + n * np.log(2 * np.pi))

    best = minimize(negative, x0=np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
    return -best.fun / n


@pytest.mark.parametrize("shape", [(60, 5), (30, 45)])
def test_logme_equals_the_maximised_evidence(shape):
    # The fixed point, the SVD shortcut and the closed-form evidence against the marginal likelihood
    # itself, for n > D and n < D.
    rng = np.random.default_rng(5)
    n, d = shape
    y = rng.integers(0, 3, n)
    features = rng.normal(size=(n, d)) + np.eye(3, d)[y]
    direct = np.mean([_direct_log_evidence(features, (y == k).astype(float)) for k in range(3)])
    assert logme(features, y) == pytest.approx(direct, abs=1e-5)


def test_bad_input_is_refused():
    features, y = _blobs(0)
    with pytest.raises(ValueError, match="two classes"):
        logme(features, np.zeros_like(y))
    with pytest.raises(ValueError, match="do not match"):
        h_score(features, y[:-1])
    with pytest.raises(ValueError, match="finite"):
        logme(np.full_like(features, np.nan), y)
