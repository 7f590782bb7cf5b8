"""How well frozen features suit a labelled task, before any training: LogME and H-score.

Both score the features ``F`` (``n`` examples x ``D`` dimensions, e.g. a model's pooled embeddings of the
training texts) against the labels ``y``. Higher is better; the scores rank models (or layers) for one
task, their absolute values are not comparable across tasks.

**LogME** (You, Liu, Wang & Long, ICML 2021, "LogME: Practical Assessment of Pre-trained Models for
Transfer Learning"). For each class ``k`` a Bayesian linear regression of the one-vs-rest target
``t = 1[y == k]`` on ``F`` with prior ``w ~ N(0, alpha^-1 I)`` and noise ``N(0, beta^-1)``; its log
evidence, maximised over ``alpha`` and ``beta``, divided by ``n`` and averaged over classes:

    L = D/2 log a + n/2 log b - n/2 log 2pi - b/2 |t - F m|^2 - a/2 |m|^2 - 1/2 log|a I + b F'F|

with ``m = b (a I + b F'F)^-1 F't``. Maximisation is MacKay's fixed-point iteration
``gamma = sum b s_j / (a + b s_j)``, ``a = gamma / |m|^2``, ``b = (n - gamma) / |t - F m|^2`` where
``s_j`` are the eigenvalues of ``F'F``: with the thin SVD ``F = U S V'`` (computed once) every step is
O(min(n, D)). Averaging over classes makes it invariant to relabelling the classes.

**H-score** (Bao, Li, Huang, Zhang, Sun & Zheng, ICIP 2019, "An Information-theoretic Approach to
Transferability in Task Transfer Learning"): ``tr(cov(f)^-1 cov(E[f | y]))``, the between-class share of
the feature variance as the whitened features see it. With few examples per dimension ``cov(f)`` is
ill-conditioned and the score explodes; Ibrahim, Ponomareva & Mazumder (ICLR 2023, "Newer is not always
better: rethinking transferability metrics, their peculiarities, stability and performance") replace it
by the Ledoit-Wolf shrinkage estimate ``cov_a(f) = (1 - a) cov(f) + a mu I`` and scale the class-means'
covariance alike: ``tr(cov_a(f)^-1 (1 - a) cov(E[f | y]))`` (default here). Both are invariant to a
global rescaling of the features (the shrinkage target ``mu`` scales with them).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 3, 300)
>>> features = rng.normal(size=(300, 16)) + 2.0 * np.eye(3, 16)[y]
>>> logme(features, y) > logme(features, rng.permutation(y))
True
>>> h_score(features, y) > h_score(features, rng.permutation(y))
True
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import ledoit_wolf


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or y.ndim != 1 or f.shape[0] != y.shape[0]:
        raise ValueError(f"features {f.shape} and labels {y.shape} do not match (need (n, D) and (n,))")
    if not np.all(np.isfinite(f)):
        raise ValueError("features must be finite")
    classes, codes = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError("need at least two classes")
    return f, codes, classes


def _log_evidence(sigma2: np.ndarray, z: np.ndarray, t_norm2: float, n: int, d: int,
                  max_iter: int, tol: float) -> float:
    """Maximised log evidence / n of ``t ~ F w`` given ``sigma2`` (non-zero eigenvalues of ``F'F``),
    ``z = U't`` (``t`` in the left singular basis) and ``|t|^2``."""
    alpha, beta = 1.0, 1.0
    outside = max(t_norm2 - float(z @ z), 0.0)  # part of t no linear map of F can reach
    for _ in range(max_iter):
        shrink = beta * sigma2 / (alpha + beta * sigma2)  # per-direction fit share
        gamma = float(shrink.sum())
        m2 = float(np.sum(shrink**2 * z**2 / sigma2))  # |m|^2, m = V diag(b s / (a + b s^2)) z
        res2 = outside + float(np.sum((1 - shrink) ** 2 * z**2))  # |t - F m|^2
        # The small floor keeps a perfectly fitted or an all-zero target finite.
        new_alpha, new_beta = gamma / (m2 + 1e-12), (n - gamma) / (res2 + 1e-12)
        converged = abs(new_alpha / new_beta - alpha / beta) <= tol * alpha / beta
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    shrink = beta * sigma2 / (alpha + beta * sigma2)
    m2 = float(np.sum(shrink**2 * z**2 / sigma2))
    res2 = outside + float(np.sum((1 - shrink) ** 2 * z**2))
    # log|A| over all D directions: alpha + beta s_j on the span of F, alpha on the rest.
    log_det = float(np.sum(np.log(alpha + beta * sigma2))) + (d - sigma2.size) * np.log(alpha)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2)
    return evidence / n


def logme(features: np.ndarray, labels: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6) -> float:
    """LogME of ``features`` (n, D) for class ``labels`` (n,): mean over classes of the maximised
    one-vs-rest log evidence per example (see module doc). Higher is better."""
    f, codes, classes = _check(features, labels)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > s.max() * max(n, d) * np.finfo(np.float64).eps  # drop numerically null directions
    u, sigma2 = u[:, keep], s[keep] ** 2
    scores = []
    for k in range(classes.size):
        t = (codes == k).astype(np.float64)
        scores.append(_log_evidence(sigma2, u.T @ t, float(t @ t), n, d, max_iter, tol))
    return float(np.mean(scores))


def h_score(features: np.ndarray, labels: np.ndarray, *, shrinkage: bool = True) -> float:
    """H-score of ``features`` (n, D) for ``labels`` (n,): ``tr(cov(f)^-1 cov(E[f|y]))``, with the
    Ledoit-Wolf shrinkage of Ibrahim et al. by default (``shrinkage=False``: Bao et al.'s original,
    with a pseudo-inverse). Higher is better."""
    f, codes, classes = _check(features, labels)
    f = f - f.mean(axis=0)
    means = np.zeros((classes.size, f.shape[1]))
    np.add.at(means, codes, f)
    means /= np.bincount(codes)[:, None]
    g = means[codes]  # E[f | y] for every example
    cov_g = g.T @ g / f.shape[0]
    if shrinkage:
        cov_f, a = ledoit_wolf(f, assume_centered=True)
        return float(np.trace(np.linalg.solve(cov_f, (1 - a) * cov_g)))
    cov_f = f.T @ f / f.shape[0]
    return float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ cov_g))
