"""benchmarks/seed_rung_replay.py's rules at the full data's first seed, on synthetic first-seed measurements."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tunelab.compare.planner import Measurement

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
replay = pytest.importorskip("seed_rung_replay")


def _first_seed(values: dict[str, float], half_width: float) -> dict[str, Measurement]:
    return {s: Measurement(s, 1.0, v, v - half_width, v + half_width) for s, v in values.items()}


# debates-2016 with 100 labels, session 36: last-n led lora by 1.9 points on 106 examples after one seed
DEBATES = {"last-n": 0.5755, "lora": 0.5566, "full": 0.5283, "bitfit": 0.5094, "head": 0.4717}
COSTS = {"last-n": 16.0, "lora": 38.0, "full": 42.0, "bitfit": 29.0, "head": 1.0}


def test_a_dearer_strategy_within_one_seeds_noise_is_cut_today_and_kept_when_the_cut_allows_for_seeds() -> None:
    ms = _first_seed(DEBATES, 0.095)
    args = (ms, COSTS, "last-n", set(DEBATES), set())
    assert replay.kept_after_first_seed(*args, "today") == ["last-n"]  # lora dominated, the rest halved
    assert replay.kept_after_first_seed(*args, "seed-widened-dominated", prior_sd=0.017) == ["last-n", "lora"]
    assert replay.kept_after_first_seed(*args, "dominated-if-shown-worse") == ["last-n", "lora"]
    assert replay.kept_after_first_seed(*args, "keep-contenders") == list(DEBATES)


def test_a_dearer_strategy_far_behind_is_still_cut() -> None:
    ms = _first_seed({"a": 0.80, "b": 0.60, "c": 0.55, "d": 0.50}, 0.05)
    costs = {"a": 10.0, "b": 50.0, "c": 20.0, "d": 20.0}
    for rule in ("today", "seed-widened-dominated", "dominated-if-shown-worse"):
        worse = {"b", "c", "d"}
        assert replay.kept_after_first_seed(ms, costs, "a", {"a"}, worse, rule, prior_sd=0.017) == ["a"], rule
