"""The verdict benchmark's own statistics (benchmarks/bench_verdict.py) on synthetic records with known answers."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
bench_verdict = pytest.importorskip("bench_verdict")


def _record(test: dict[str, list[float]], validation: dict[str, float]) -> dict:
    return {"strategies": {s: {"test": sum(v) / len(v), "validation": validation[s]} for s, v in test.items()},
            "per_seed": {s: [{"test": x} for x in v] for s, v in test.items()}}


def test_a_ranking_that_reproduces_has_ceiling_one_and_a_reversed_one_minus_one() -> None:
    names = bench_verdict.STRATEGIES
    same = _record({s: [i, i, i] for i, s in enumerate(names)}, {s: i for i, s in enumerate(names)})
    flipped = _record({s: [i, -i, -i] for i, s in enumerate(names)}, {s: i for i, s in enumerate(names)})
    assert bench_verdict.ranking_ceiling([same]) == pytest.approx(
        {"validation_vs_test_tau_b": 1.0, "tasks": 1, "one_seed_vs_other_seeds_tau_b": 1.0, "tasks_with_3_seeds": 1})
    ceiling = bench_verdict.ranking_ceiling([flipped])
    assert ceiling["validation_vs_test_tau_b"] == pytest.approx(-1.0)  # validation ranks against the seed means
    assert ceiling["one_seed_vs_other_seeds_tau_b"] == pytest.approx(-1.0)


def test_the_advice_against_a_baseline_is_paired_task_by_task() -> None:
    baselines = ("always full", "always lora", "fixed order", "few thousand -> PEFT")
    same = [{"advice": {"regret": x}, **{b: {"regret": x} for b in baselines}} for x in (0.0, 1.0, -2.0)]
    result = bench_verdict.advice_against_baselines(same)
    assert result["always full"] == {"mean_difference_points": 0.0, "interval_95": [0.0, 0.0], "better_same_worse": [0, 3, 0]}
    better = [{"advice": {"regret": 0.0}, **{b: {"regret": 3.0 + i} for b in baselines}} for i in range(10)]
    row = bench_verdict.advice_against_baselines(better)["fixed order"]
    assert row["better_same_worse"] == [10, 0, 0] and row["interval_95"][1] < 0 and row["mean_difference_points"] == -7.5


@pytest.mark.parametrize("n_split", [2225, 4863])
def test_the_planned_pass_runs_exactly_where_the_planner_makes_rounds(n_split: int) -> None:
    from tunelab.compare.planner import round_fractions

    for labels in (*bench_verdict.BUDGETS, 30, 80):
        rounds = round_fractions([1.0], min(n_split, labels or n_split))  # fraction 1: the split cut to the labels
        assert bench_verdict.plans_rounds(labels, 1) == (len(rounds) > 1), (labels, rounds)
        assert bench_verdict.plans_rounds(labels, 3)  # one seed at the full data, then the others
    assert bench_verdict.plans_rounds(50) and not bench_verdict.plans_rounds(50, 1)  # 50 labels: 3 seeds by default


def test_an_unknown_task_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_verdict.main(["run", "--tasks", "minilm-imdb-100", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'minilm-imdb-100'" in err and "smollm2-bbc-news-300" in err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


def _planned(folder: Path, task: str, ratio: float, agrees: bool = True, pick: str = "lora") -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{task}.planned.json").write_text(json.dumps(
        {"task": task, "planned_pick": pick, "exhaustive_pick": "lora", "agrees": agrees, "agrees_with_record": agrees,
         "planned_time_s": 100 * ratio, "exhaustive_time_s": 100.0, "time_ratio": ratio}))
    (folder.parent / "verdict" / f"{task}.json").parent.mkdir(parents=True, exist_ok=True)
    (folder.parent / "verdict" / f"{task}.json").write_text(json.dumps({"task": task}))


def test_a_later_sittings_planned_pass_replaces_the_earlier_one_of_its_task(tmp_path: Path) -> None:
    results, later = tmp_path / "verdict", tmp_path / "verdict-later"
    _planned(results, "a", 0.9)
    _planned(results, "b", 0.5, agrees=False, pick="full")
    _planned(later, "a", 0.3)
    summary = bench_verdict.planned_summary(results, [later])
    assert [(r["task"], r["time_ratio"], Path(r["source"]).name) for r in summary["detail"]] == [
        ("a", 0.3, "verdict-later"), ("b", 0.5, "verdict")]
    assert summary["median_time_ratio"] == pytest.approx(0.4) and summary["agree"] == 1 and summary["same_pick"] == 1
    low, high = summary["share_agree_interval_95"]
    assert 0 < low < 0.5 < high < 1  # one of two: Clopper-Pearson says little
    assert bench_verdict.planned_summary(results)["median_time_ratio"] == pytest.approx(0.7)  # without the later folder


def test_the_bootstrap_interval_over_tasks_holds_the_statistic_and_shrinks_to_a_constant() -> None:
    import numpy as np

    assert bench_verdict.bootstrap_interval([2.0] * 12) == [2.0, 2.0]
    values = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 3.0]
    low, high = bench_verdict.bootstrap_interval(values)
    assert low < np.mean(values) < high and high - low < max(values) - min(values)
    low_m, high_m = bench_verdict.bootstrap_interval(values, np.median)
    assert low_m <= np.median(values) <= high_m and high_m < 3.0  # the median ignores the one large value


def test_evaluate_with_a_planned_from_that_is_not_a_folder_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_verdict.main(["evaluate", "--results", str(tmp_path), "--planned-from", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "planned.json" in err
    assert not list(tmp_path.iterdir())


def test_leaving_one_dataset_out_calibrates_on_none_of_its_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    import tunelab.advice.calibrated as calibrated

    names = bench_verdict.STRATEGIES
    tests = {s: [0.5 + 0.1 * i] for i, s in enumerate(names)}  # the last strategy is best on test
    records = [{**_record(tests, {s: 0.0 for s in names}), "task": f"{model}-{data}-{n}", "data": data, "model": model,
                "validation_best": names[-1], "signals": {"train_examples": n}}
               for model in ("m1", "m2") for data in ("a", "b") for n in (100, 300)]
    seen: list[set[str]] = []

    def fit(rest: list[dict]) -> dict:
        seen.append({r["task"] for r in rest})
        return {"tasks": {r["task"] for r in rest}}

    def advise(signals: dict, calibration: dict) -> dict:  # advises the last strategy: no regret
        return {"strategy": names[-1], "decided_by": "base rate", "scores": {s: float(i) for i, s in enumerate(names)}}

    monkeypatch.setattr(calibrated, "fit_calibration", fit)
    monkeypatch.setattr(calibrated, "advise", advise)
    grouped = bench_verdict.grouped_advice(records, "data")
    assert grouped["tasks"] == 8 and grouped["mean_regret"] == pytest.approx(0.0) and grouped["mean_tau_b"] == pytest.approx(1.0)
    assert seen == [{r["task"] for r in records if r["data"] == "b"}, {r["task"] for r in records if r["data"] == "a"}]
    assert {r["left_out"] for r in grouped["detail"]} == {"a", "b"} and all(r["calibrated_on"] == 4 for r in grouped["detail"])
    assert grouped["by_group"]["a"]["tasks"] == 4 and grouped["by_group"]["b"]["calibrated_on"] == 4
    assert grouped["by_group"]["a"]["mean_regret"] == pytest.approx(0.0)
    assert grouped["by_group"]["a"]["baselines_mean_regret"]["always lora"] == pytest.approx(10.0)  # lora 0.1 below


def test_the_held_out_tier_is_a_dataset_of_its_own_and_runs_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held_out = bench_verdict.tier_tasks("held-out")
    assert held_out and {data for _, data, _ in held_out}.isdisjoint({data for _, data, _ in bench_verdict.tier_tasks("core")})
    assert set(bench_verdict.tier_tasks("all")) == {*bench_verdict.tier_tasks("core"), *bench_verdict.tier_tasks("extended"),
                                                    *held_out}
    assert bench_verdict.main(["run", "--tasks", "minilm-imdb-100", "--results", str(tmp_path)]) == 2
    assert bench_verdict.task_id(*held_out[0]) in capsys.readouterr().err  # --tasks knows every tier's tasks


def test_the_planned_passes_read_are_the_headlines() -> None:
    """The later sittings' passes replace the ones in results/verdict (the replays once read them the other way round,
    and took six tasks' passes of 2026-12-02): the recorded median time ratio is the headline's 0.58x."""
    results = bench_verdict.RESULTS
    plans = bench_verdict.planned_records(results, [results.parent / f for f in bench_verdict.PLANNED_SITTINGS])
    if len(plans) < 16:
        pytest.skip("the verdict benchmark's planned passes are not here")
    assert statistics.median(p["time_ratio"] for p in plans) == pytest.approx(0.577, abs=0.001)
    assert {p["task"]: Path(p["source"]).name for p in plans}["minilm-rotten-tomatoes-300"] == "verdict-s34"
