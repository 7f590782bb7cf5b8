"""tunelab.advice.curves on synthetic learning curves whose parameters are known."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.advice.curves import back_test, crossover, fit_power_law

DOUBLING = np.array([100, 200, 400, 800, 1600, 3200.0])
WIDE = np.array([100, 300, 1000, 3000, 10_000, 30_000.0])


def _law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * n**-c


def test_noise_free_curve_is_recovered_exactly_enough():
    fit = fit_power_law(DOUBLING, _law(DOUBLING, 0.9, 2.0, 0.5), n_boot=100)
    assert fit.fitted and fit.resample == "residuals"
    assert fit.a == pytest.approx(0.9, abs=1e-3)
    assert fit.b == pytest.approx(2.0, rel=0.03)
    assert fit.c == pytest.approx(0.5, rel=0.02)
    assert fit.predict(6400.0) == pytest.approx(_law(6400.0, 0.9, 2.0, 0.5), abs=1e-4)


def test_noisy_power_law_asymptote_within_a_point():
    # Noise sd 0.002 around a = 0.9 over 2.5 decades of n: the asymptote is identifiable.
    errors = []
    for seed in range(10):
        y = _law(WIDE, 0.9, 2.0, 0.5) + np.random.default_rng(seed).normal(0, 0.002, WIDE.size)
        fit = fit_power_law(WIDE, y, n_boot=200, seed=seed)
        errors.append(abs(fit.a - 0.9))
        assert fit.a_interval.low <= fit.a <= fit.a_interval.high
    assert sum(e < 0.01 for e in errors) >= 9 and np.median(errors) < 0.005


def test_predictions_at_two_and_five_times_the_largest_n():
    y = _law(DOUBLING, 0.9, 2.0, 0.5) + np.random.default_rng(1).normal(0, 0.002, DOUBLING.size)
    fit = fit_power_law(DOUBLING, y, n_boot=500)
    (p2, p5) = fit.predictions
    assert (p2.n, p5.n) == (6400.0, 16000.0)
    for p in (p2, p5):
        assert p.value.low <= p.value.estimate <= p.value.high
        assert p.value.contains(_law(p.n, 0.9, 2.0, 0.5))
    assert p5.value.estimate > p2.value.estimate > y[-1] - 0.01
    assert p5.value.width > p2.value.width  # further out, less certain
    assert fit.predict(1e9) <= 1.0


def test_back_test_beats_last_observed_on_a_rising_curve():
    beats, covered = 0, 0
    for seed in range(10):
        y = _law(DOUBLING, 0.9, 2.0, 0.5) + np.random.default_rng(seed).normal(0, 0.002, DOUBLING.size)
        bt = back_test(DOUBLING, y, n_boot=200, seed=seed)
        assert bt.n_target == 3200 and bt.prediction.level == 0.8
        assert bt.baseline_error == pytest.approx(y[-2] - y[-1])
        assert bt.error == pytest.approx(bt.prediction.estimate - y[-1])
        beats += bt.beats_baseline
        covered += bt.covered
    assert beats >= 9
    assert covered >= 5  # nominal 80 %; measured ~75 % for 5-point fits


def test_lower_is_better_metric_is_fitted_with_the_sign_turned():
    ppl = 5.0 + 40.0 * DOUBLING**-0.4
    fit = fit_power_law(DOUBLING, ppl, "perplexity", n_boot=100)
    assert fit.a == pytest.approx(5.0, abs=0.05) and fit.c == pytest.approx(0.4, rel=0.03)
    assert fit.predict(1e6) < ppl[-1]  # keeps falling toward a
    assert fit.predictions[0].value.estimate < ppl[-1]


def test_constraints_hold_on_curves_that_break_the_law():
    # Rising linearly in log n with no sign of saturation: a must stay within accuracy's range.
    linear = 0.3 + 0.1 * np.log10(DOUBLING)
    fit = fit_power_law(DOUBLING, linear, n_boot=100)
    assert fit.a <= 1.0 and fit.b > 0 and fit.c > 0
    # Falling accuracy: no b > 0 fits better than flat, so the fit is the (weighted) mean level.
    falling = 0.8 - 0.01 * np.arange(DOUBLING.size)
    flat = fit_power_law(DOUBLING, falling, n_boot=100)
    assert flat.b == 0.0 and flat.a == pytest.approx(np.dot(flat.weights, falling))
    # Perplexity's asymptote may not go below 1.
    assert fit_power_law(DOUBLING, 1.0 + 50 * DOUBLING**-0.3 - 0.2, "perplexity", n_boot=50).a >= 1.0


def test_seeds_are_resampled_when_every_point_has_three():
    rng = np.random.default_rng(4)
    y = [_law(n, 0.9, 2.0, 0.5) + rng.normal(0, 0.004, 3) for n in DOUBLING]
    fit = fit_power_law(DOUBLING, y, n_boot=500)
    assert fit.resample == "seeds" and fit.y[0] == pytest.approx(np.mean(y[0]))
    assert fit.predictions[0].value.width > 0
    with pytest.raises(ValueError, match="at least 2 seeds"):
        fit_power_law(DOUBLING, [*y[:-1], y[-1][:1]], resample="seeds", n_boot=10)


def test_fewer_than_four_fractions_means_no_fit():
    fit = fit_power_law([100, 200, 400], [0.7, 0.75, 0.78])
    assert not fit.fitted and "at least 4" in fit.reason and fit.a is None
    assert fit.predictions == () and fit.y == (0.7, 0.75, 0.78)
    with pytest.raises(ValueError, match="no curve"):
        fit.predict(800)
    bt = back_test([100, 200, 400, 800], [0.7, 0.75, 0.78, 0.8])
    assert not bt.fit.fitted and bt.error is None and bt.covered is None and bt.beats_baseline is None
    assert bt.baseline_error == pytest.approx(-0.02)
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([100, 100, 200, 400], [0.7, 0.7, 0.75, 0.78])


# --------------------------------------------------------------------------------------------- crossover

N4 = np.array([125, 250, 500, 1000.0])
# Full fine-tuning: higher ceiling, slower start. Best PEFT: lower ceiling, fast start.
FULL = (0.92, 3.0, 0.5)
PEFT = (0.85, 0.5, 0.5)
# 0.92 - 3 x = 0.85 - 0.5 x  <=>  x = n^-0.5 = 0.028  <=>  n = (2.5 / 0.07)^2
CROSS = (2.5 / 0.07) ** 2


def test_crossover_of_two_known_curves_is_where_it_is():
    full = fit_power_law(N4, _law(N4, *FULL), n_boot=100)
    peft = fit_power_law(N4, _law(N4, *PEFT), n_boot=100)
    result = crossover(full, peft)
    assert result.status == "crosses" and result.horizon == (1000.0, 100_000.0)
    assert result.n_cross.estimate == pytest.approx(CROSS, rel=0.02)


def test_crossover_interval_with_noise_contains_the_truth():
    rng = np.random.default_rng(0)
    full = fit_power_law(N4, _law(N4, *FULL) + rng.normal(0, 0.002, 4), n_boot=1000, seed=1)
    peft = fit_power_law(N4, _law(N4, *PEFT) + rng.normal(0, 0.002, 4), n_boot=1000, seed=2)
    result = crossover(full, peft)
    assert result.status == "crosses"
    assert result.n_cross.low < CROSS < result.n_cross.high
    assert 0.5 < result.share_overtaking <= 1.0


def test_crossover_never_ahead_and_no_fit():
    full = fit_power_law(N4, _law(N4, 0.84, 3.0, 0.5), n_boot=100)  # lower ceiling: never catches up
    peft = fit_power_law(N4, _law(N4, *PEFT), n_boot=100)
    never = crossover(full, peft)
    assert never.status == "never" and never.n_cross.estimate == np.inf
    assert never.share_overtaking == 0.0 and "never within [1000, 100000]" in never.message
    ahead = crossover(peft, full)
    assert ahead.status == "ahead" and ahead.n_cross.estimate <= 1000
    points_only = fit_power_law(N4[:3], _law(N4[:3], *PEFT))
    assert crossover(full, points_only).status == "no_fit"


def test_crossover_for_perplexity_means_going_lower():
    full = fit_power_law(N4 * 2, 8.0 + 200.0 * (N4 * 2) ** -0.5, "perplexity", n_boot=100)
    peft = fit_power_law(N4 * 2, 10.0 + 50.0 * (N4 * 2) ** -0.5, "perplexity", n_boot=100)
    # 8 + 200 x = 10 + 50 x  <=>  x = 2 / 150  <=>  n = 5625
    result = crossover(full, peft)
    assert result.status == "crosses" and result.n_cross.estimate == pytest.approx(5625, rel=0.02)


def test_flat_curve_at_the_majority_score_keeps_each_points_evaluation_noise(tmp_path):
    """A head that always predicts the majority class measures the same value at every size: the residuals are all
    0, and the residual bootstrap alone gave 'predicted at 5x the labels 0.474 [0.474, 0.474]'. Each point was
    measured on a few validation examples; resampling them gives the interval a width that holds the points."""
    from tunelab.advice.choose import learning_curves_from_results
    from tunelab.run.outputs import ExampleOutputs

    y = np.array([0] * 14 + [1] * 6)
    majority = ExampleOutputs(labels=y, predictions=np.zeros_like(y), label_names=["neg", "pos"])
    results = []
    for fraction, n_train in [(0.05, 4), (0.3, 21), (0.6, 42), (1.0, 70)]:
        folder = tmp_path / f"head-f{fraction:g}"
        majority.save(folder, "validation")
        results.append({
            "run_info": {"run_id": folder.name, "strategy": "head", "seed": 0, "data_fraction": fraction,
                         "status": "success"},
            "train_info": {"train_time_s": 1.0, "peak_memory_mb": 100.0, "trainable_share": 0.01},
            "metrics": {"validation": majority.metrics()},
            "meta_info": {"task": "classification", "n_train": n_train, "label_names": ["neg", "pos"]},
            "config": {"strategy": "head", "seed": 0, "out": str(folder)},
        })  # fmt: skip
    fit = learning_curves_from_results(results, "accuracy").curves["head"]
    assert fit.fitted and fit.y == pytest.approx([0.7] * 4) and fit.measurement_noise
    far = fit.predictions[-1].value
    assert far.estimate == pytest.approx(0.7)
    # accuracy of 20 examples at 0.7 has a standard error of about 0.1: the interval is of that order
    assert far.low < 0.6 and far.high > 0.8
    assert fit.a_interval.high - fit.a_interval.low > 0.2


def test_measurement_replicates_must_have_a_column_per_point():
    n = DOUBLING
    with pytest.raises(ValueError, match="shape"):
        fit_power_law(n, _law(n, 0.9, 1.0, 0.5), measurement=np.zeros((10, 3)), n_boot=10)


def test_three_seeds_a_point_get_students_t_not_a_resample():
    """Five points of a known curve, 3 seeds each (sd 0.01): the 95 % interval of the curve at the largest n held the
    truth in 74 % of 200 sets when each point's seeds were resampled (their spread taken as known, shrunk by 2/3);
    with the seeds' variance drawn with Student's t on the points' Satterthwaite df (the verdict's treatment), 89 %."""
    n = np.array([250, 500, 1000, 2000, 4000.0])
    covered = []
    for k in range(120):
        rng = np.random.default_rng(k)
        y = [list(_law(x, 0.9, 1.2, 0.5) + rng.normal(0, 0.01, 3)) for x in n]
        fit = fit_power_law(n, y, n_boot=300, seed=k, horizons=())
        assert fit.resample == "seeds"
        covered.append(fit.interval(4000.0).contains(_law(4000.0, 0.9, 1.2, 0.5)))
    assert np.mean(covered) >= 0.84


def test_measurement_rows_pair_two_fits_whatever_their_seed():
    """Replicate r of a fit adds row r of the measurement: two strategies' fits on the same example resamples stay
    paired in a crossover though their seeds (and so their seeds' draws) differ."""
    n = np.array([250, 500, 1000, 2000.0])
    flat = [[0.5] * 3] * 4  # no residual, no seed spread: the measurement is all the noise
    R = np.random.default_rng(0).normal(0, 0.01, (50, 4))
    a = fit_power_law(n, flat, measurement=R, n_boot=100, seed=1, horizons=())
    b = fit_power_law(n, flat, measurement=R, n_boot=100, seed=2, horizons=())
    assert np.ptp(a.replicates(2000.0)) > 0
    np.testing.assert_allclose(a.replicates(2000.0), b.replicates(2000.0))
