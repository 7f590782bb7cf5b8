"""The advice before training calibrated on benchmark records (tunelab.advice.calibrated) and the
frozen-feature signals it reads (tunelab.advice.features)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunelab.advice.calibrated import SIGNALS, advise, explain, fit_calibration, load_calibration
from tunelab.advice.features import feature_signals


def _record(per_class: float, probe: float, values: dict[str, float]) -> dict:
    return {
        "signals": {"examples_per_class": per_class, "probe_gain": probe, "logme": probe - 1.0,
                    "domain": {"domain_signal": "mlm_loss_ratio", "mlm_loss_ratio": 1.2}},
        "strategies": {s: {"validation": v} for s, v in values.items()},
    }


def _records() -> list[dict]:
    """Few labels: head best; many labels: full best (the pattern the benchmark measures)."""
    out = []
    for per_class in (20, 50, 150, 500, 1500, 3000):
        few = per_class < 200
        out.append(_record(per_class, 0.5, {"head": 0.80 if few else 0.78, "full": 0.72 if few else 0.86,
                                            "lora": 0.76 if few else 0.84}))
    return out


def test_fit_and_advise_follow_the_measured_pattern(tmp_path):
    calibration = fit_calibration(_records(), alpha=0.1)
    assert set(calibration["strategies"]) == {"head", "full", "lora"} and calibration["signals"] == list(SIGNALS)
    few = advise({"examples_per_class": 30, "probe_gain": 0.5, "logme": -0.5, "domain": {}}, calibration)
    many = advise({"examples_per_class": 2000, "probe_gain": 0.5, "logme": -0.5, "domain": {}}, calibration)
    assert few["strategy"] == "head" and many["strategy"] == "full"
    assert many["decided_by"] == "log10_examples_per_class"  # the only signal that varies
    assert "labels per class" in explain(many)
    assert advise({"examples_per_class": 30, "probe_gain": 0.5, "logme": -0.5, "domain": {}}, calibration,
                  allowed=["lora", "full"])["strategy"] in ("lora", "full")
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration))
    assert load_calibration(path) == calibration and load_calibration(tmp_path / "missing.json") is None
    path.write_text(json.dumps(dict(calibration, signals=["log10_examples_per_class", "domain_distance"])))
    assert load_calibration(path) is None  # fitted on a signal this version does not measure: the tiers decide


def test_the_domain_signal_enters_on_one_scale_whatever_measured_it():
    """A decoder's LM-loss ratio and an encoder's centroid distance are in different units; the calibrated advice
    reads both on the thresholds' common scale, so a ratio of 1.0 (close) is not taken as farther than a centroid
    distance of 0.45 (moderate). A domain that was not measured moves no score."""
    from tunelab.advice.calibrated import signal_vector

    def farness(method: str, value: float) -> float:
        return signal_vector({"examples_per_class": 100, "probe_gain": 0.5, "logme": -0.5,
                              "domain": {"domain_signal": method, method: value}})["domain_farness"]

    assert farness("lm_loss_ratio", 1.0) < 0 < farness("centroid_distance", 0.45) < 1 <= farness("mlm_loss_ratio", 1.4)
    calibration = fit_calibration(_records(), alpha=1.0)
    unmeasured = {"examples_per_class": 100, "probe_gain": 0.5, "logme": -0.5, "domain": {}}
    at_mean = dict(unmeasured, domain={"domain_signal": "lm_loss_ratio",
                                       "lm_loss_ratio": 1.1 + 0.3 * calibration["mean"]["domain_farness"]})
    assert advise(unmeasured, calibration)["scores"] == pytest.approx(advise(at_mean, calibration)["scores"])


def test_packaged_calibration_is_readable_and_ranks_every_strategy_it_holds():
    """The file ships with the package, and was fitted on the signals this version measures (an older file would
    silently send the advice back to its tiers)."""
    from tunelab.advice.calibrated import CALIBRATION_PATH

    assert CALIBRATION_PATH.is_file()
    calibration = load_calibration()
    assert calibration is not None and calibration["signals"] == list(SIGNALS)
    advice = advise({"examples_per_class": 100, "probe_gain": 0.5, "logme": -0.5, "domain": {}}, calibration)
    assert advice["ranking"] and set(advice["ranking"]) == set(calibration["strategies"])
    assert "command" in calibration


def test_feature_signals_rank_informative_features_above_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    informative = rng.normal(size=(300, 16)) + 2.0 * np.eye(3, 16)[y]
    noise = rng.normal(size=(300, 16))
    good, bad = feature_signals(informative, y), feature_signals(noise, y)
    assert good["probe_accuracy"] > 0.7 and abs(bad["probe_gain"]) < 0.2
    assert good["logme"] > bad["logme"] and good["h_score"] > bad["h_score"]


def test_a_head_probe_that_cannot_run_is_not_reported_as_a_measured_zero_and_moves_no_score():
    """With a class of one example no fold can hold it out: the probe was skipped, and `recommend` printed "head probe
    0.00 of the way from the majority class to perfect" and scored the strategies as if it had measured that."""
    rng = np.random.default_rng(0)
    y = np.array([0] * 20 + [1] * 20 + [2])
    signals = feature_signals(rng.normal(size=(41, 8)) + np.eye(3, 8)[y], y)
    assert signals["probe_accuracy"] is None and signals["probe_gain"] is None
    calibration = fit_calibration(_records(), alpha=1.0)
    skipped = advise({"examples_per_class": 13, "probe_gain": None, "logme": -0.5, "domain": {}}, calibration)
    at_mean = advise({"examples_per_class": 13, "probe_gain": calibration["mean"]["probe_gain"], "logme": -0.5,
                      "domain": {}}, calibration)
    assert skipped["scores"] == pytest.approx(at_mean["scores"])
    assert "head probe not run" in explain(skipped) and "0.00 of the way" not in explain(skipped)


def test_the_frozen_feature_sample_of_more_classes_than_it_holds_is_drawn_unstratified():
    """5,000 classes of two examples: scikit-learn cannot stratify 2,000 rows of them, and its ValueError was
    `tunelab recommend`'s traceback."""
    from tunelab.advice.features import _sample

    labels = np.repeat(np.arange(5000), 2)
    rows = _sample(labels, 2000, seed=1)
    assert len(rows) == 2000 and len(set(rows)) == 2000
    balanced = np.repeat(np.arange(4), 50)
    assert np.bincount(balanced[_sample(balanced, 100, seed=1)]).tolist() == [25] * 4  # still stratified where it can be


def test_the_penalty_is_chosen_out_of_sample_and_signals_without_information_get_no_weight():
    """The ridge penalty is chosen by leaving one record out. Where a signal tells the strategies apart (labels per
    class here), a finite penalty predicts the records left out better than the base rates and the advice follows
    it; where the gaps are noise unrelated to every signal, the base rates win, every weight is 0 and the advice
    says that the base rates decided and why."""
    from tunelab.advice.calibrated import choose_alpha, signals_used

    informative = fit_calibration(_records())
    assert informative["alpha"] != "inf" and signals_used(informative)
    assert informative["alpha_search"]["error"][str(informative["alpha"])] < informative["alpha_search"]["error"]["inf"]
    assert advise({"examples_per_class": 2000, "probe_gain": 0.5, "logme": -0.5, "domain": {}}, informative)["strategy"] == "full"

    rng = np.random.default_rng(1)  # one fixed synthetic benchmark whose gaps are noise (a known answer)
    noise = [_record(float(rng.choice([20, 100, 500, 3000])), float(rng.uniform(0.2, 0.9)),
                     {"head": 0.70 + rng.normal(0, 0.01), "full": 0.80 + rng.normal(0, 0.01),
                      "lora": 0.81 + rng.normal(0, 0.01)}) for _ in range(12)]
    alpha, errors = choose_alpha(noise)
    assert alpha == float("inf") and errors[alpha] <= min(errors.values())
    calibration = fit_calibration(noise)
    assert calibration["alpha"] == "inf" and not signals_used(calibration)
    advice = advise({"examples_per_class": 100, "probe_gain": 0.5, "logme": -0.5, "domain": {}}, calibration)
    assert advice["ranking"] == ["lora", "full", "head"] and advice["decided_by"] == "base rate"
    assert advice["base_rates_only"] and "carry no weight" in explain(advice)
    assert choose_alpha(noise[:2])[0] == float("inf")  # too few records to test a signal: the base rates


def test_a_signal_that_only_tells_the_datasets_apart_gets_no_weight_when_datasets_are_held_out():
    """LogME differs between two datasets and not within them, and so do the strategies' gaps. Leaving one record out
    keeps the same dataset's other records in the fit, so LogME looks predictive (a finite penalty wins); leaving the
    dataset out shows that nothing in one dataset predicts the other, and the base rates are kept."""
    from tunelab.advice.calibrated import choose_alpha, held_out_groups

    def record(data: str, logme: float, per_class: float, values: dict[str, float]) -> dict:
        r = _record(per_class, 0.5, values)
        r["signals"]["logme"] = logme
        return {**r, "data": data}

    records = [record("a", -1.0, n, {"head": 0.70, "full": 0.75, "lora": 0.80}) for n in (20, 50, 150, 500)]
    records += [record("b", 1.0, n, {"head": 0.70, "full": 0.80, "lora": 0.75}) for n in (20, 50, 150, 500)]
    assert held_out_groups(records) == ["a"] * 4 + ["b"] * 4
    unnamed = [{k: v for k, v in r.items() if k != "data"} for r in records]
    assert held_out_groups(unnamed) == list(range(8))
    assert choose_alpha(unnamed)[0] != float("inf")  # one record out: LogME "predicts" the gaps
    assert choose_alpha(records)[0] == float("inf")  # one dataset out: it does not carry to the other
    assert choose_alpha(records[:4])[0] == float("inf")  # one dataset alone: nothing shows a signal carries


def test_the_head_probe_keeps_copies_of_a_text_in_one_fold():
    """A pair dataset where most rows repeated read "head probe macro F1 1.000": folds split the copies of a text, so
    the probe was scored on texts it had trained on. Copies (the same features) now stay in one fold: on labels that
    the features do not predict, the probe is at chance with copies as without them."""
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(60, 256))  # wide, as a body's features: a linear probe can fit 60 points
    y = rng.integers(0, 2, size=60)  # labels unrelated to the features
    copies = np.repeat(np.arange(60), 5)
    signals = feature_signals(distinct[copies], y[copies])
    assert signals["probe_accuracy"] < 0.75  # copies split across folds read about 1.0
