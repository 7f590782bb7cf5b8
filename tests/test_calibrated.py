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


def test_packaged_calibration_is_readable_and_ranks_every_strategy_it_holds():
    calibration = load_calibration()
    if calibration is None:
        pytest.skip("no calibration.json packaged")
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
