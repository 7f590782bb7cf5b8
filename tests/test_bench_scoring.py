"""The verdict benchmark's own statistics (benchmarks/bench_verdict.py) on synthetic records with known answers."""

from __future__ import annotations

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
        rounds = round_fractions([1.0], n_split, max_examples=labels)
        assert bench_verdict.plans_rounds(labels, 1) == (len(rounds) > 1), (labels, rounds)
        assert bench_verdict.plans_rounds(labels, 3)  # one seed at the full data, then the others
    assert bench_verdict.plans_rounds(50) and not bench_verdict.plans_rounds(50, 1)  # 50 labels: 3 seeds by default


def test_an_unknown_task_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_verdict.main(["run", "--tasks", "minilm-imdb-100", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'minilm-imdb-100'" in err and "smollm2-bbc-news-300" in err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written
