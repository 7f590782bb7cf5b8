"""The budget-aware planner (:mod:`tunelab.compare.planner`): successive halving on synthetic learning
curves and a simulated clock (no training), then one planned comparison through the CLI on a tiny model.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
from pathlib import Path

import pytest

from tunelab.compare.planner import (
    Measurement,
    Planner,
    RunTiming,
    Stop,
    default_budget_s,
    predict_final,
    predict_seconds,
    round_fractions,
)


def curve(a: float, b: float = 0.3, c: float = 0.5):
    """An inverse power law of accuracy in the training examples."""
    return lambda n: a - b * n ** -c


def measure(strategy: str, fraction: float, value: float, half: float, n: float | None = None) -> Measurement:
    return Measurement(strategy, fraction, value, value - half, value + half, n)


def run_rounds(planner: Planner, curves: dict, *, half: float = 0.02, n_full: float = 3000.0) -> None:
    """Drive ``planner`` to the end with measurements read off ``curves`` (no clock, no budget)."""
    while (rnd := planner.next_round(now_s=0.0)) is not None:
        n = rnd.fraction * n_full
        planner.finish_round(rnd, [measure(s, rnd.fraction, curves[s](n), half, n) for s in rnd.strategies])


def test_a_strategy_far_behind_is_stopped_with_its_prediction_and_a_close_one_is_kept():
    curves = {"leader": curve(0.85), "close": curve(0.84), "far": curve(0.70)}
    planner = Planner(list(curves), rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=3000.0, eta=1)
    run_rounds(planner, curves)
    stopped = planner.stopped
    assert set(stopped) == {"far"}
    stop = stopped["far"]
    assert stop.status == "stopped_early" and stop.reason == "behind" and stop.round == 1
    assert stop.fraction == pytest.approx(1 / 9)
    assert stop.prediction is not None and stop.leader is not None
    assert stop.prediction.optimistic < stop.leader.pessimistic  # what stopped it, recorded
    assert "far" not in planner.done_[1].strategies and planner.done_[-1].strategies == ["leader", "close"]
    summary = planner.summary()
    assert summary["strategies"]["far"]["status"] == "stopped_early"
    assert summary["strategies"]["close"]["status"] == summary["strategies"]["leader"]["status"] == "finalist"
    assert summary["stopped"][0]["prediction"]["optimistic"] == pytest.approx(stop.prediction.optimistic)
    json.dumps(summary)  # goes into compare.json as it is


def test_one_within_the_interval_is_kept_to_the_end():
    curves = {"a": curve(0.80), "b": curve(0.78)}  # 2 points apart, intervals of ±4 points
    planner = Planner(list(curves), rounds=(0.1, 0.3, 1.0), metric="accuracy", target=3000.0, eta=1)
    run_rounds(planner, curves, half=0.04)
    assert planner.stopped == {}
    assert [r.strategies for r in planner.done_] == [["a", "b"]] * 3


def test_a_steep_curve_is_not_stopped_on_its_small_data_value_alone():
    """Behind at a ninth of the data, but gaining fast: carrying its last gain on keeps it in."""
    planner = Planner(["flat", "steep"], rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=900.0, eta=1)
    r1 = planner.next_round(0.0)
    planner.finish_round(r1, [measure("flat", 1 / 9, 0.80, 0.02, 100), measure("steep", 1 / 9, 0.66, 0.02, 100)])
    r2 = planner.next_round(0.0)  # one point each: steep's best case 0.68 < flat's worst 0.78
    assert planner.stopped["steep"].reason == "behind" and r2.strategies == ["flat"]

    planner = Planner(["flat", "steep"], rounds=(1 / 27, 1 / 9, 1 / 3, 1.0), metric="accuracy", target=2700.0, eta=1)
    for fraction, (flat, steep), half in zip((1 / 27, 1 / 9), ((0.70, 0.60), (0.72, 0.68)), (0.06, 0.02)):
        rnd = planner.next_round(0.0)
        planner.finish_round(rnd, [measure("flat", fraction, flat, half, fraction * 2700),
                                   measure("steep", fraction, steep, half, fraction * 2700)])
    rnd = planner.next_round(0.0)
    assert "steep" in rnd.strategies  # 4 points behind, but +8 per ×3 of data with two ×3 steps left
    prediction = planner.predict("steep")
    assert prediction.optimistic == pytest.approx(0.70 + 0.08 * 2)
    assert prediction.pessimistic == pytest.approx(0.66)


def test_lower_is_better_metrics_stop_the_higher_perplexity():
    planner = Planner(["good", "bad", "near"], rounds=(1 / 9, 1 / 3, 1.0), metric="perplexity", target=900.0, eta=1)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("good", 1 / 9, 12.0, 0.5, 100), measure("bad", 1 / 9, 20.0, 0.8, 100),
                               measure("near", 1 / 9, 12.6, 0.5, 100)])
    rnd = planner.next_round(0.0)
    assert set(planner.stopped) == {"bad"} and rnd.strategies == ["good", "near"]  # lowest first
    stop = planner.stopped["bad"]
    assert stop.prediction.optimistic == pytest.approx(19.2)  # the optimistic end is the lower one
    assert stop.leader.strategy == "good" and stop.leader.pessimistic == pytest.approx(12.5)
    assert "above good's worst case" in stop.message


def test_four_rounds_use_a_fitted_learning_curve():
    curves = {"a": curve(0.90, 1.0, 0.5), "b": curve(0.70, 1.0, 0.5)}
    planner = Planner(list(curves), rounds=(0.05, 0.1, 0.2, 0.4, 1.0), metric="accuracy", target=4000.0, eta=1)
    rng = random.Random(0)
    while (rnd := planner.next_round(0.0)) is not None:
        n = rnd.fraction * 4000
        planner.finish_round(rnd, [measure(s, rnd.fraction, curves[s](n) + rng.gauss(0, 0.002), 0.01, n)
                                   for s in rnd.strategies])
    # b's gap (20 points) outlasts any interval: stopped; by a fit once it had 4 points, or sooner
    assert set(planner.stopped) == {"b"}
    points = [measure("a", f, curves["a"](f * 4000), 0.01, f * 4000) for f in (0.05, 0.1, 0.2, 0.4)]
    fit = predict_final(points, "accuracy", 4000.0)
    assert "power law" in fit.method and fit.pessimistic <= curves["a"](4000) + 0.01 <= fit.optimistic + 0.02


def simulate(planner: Planner, curves: dict, true_seconds, *, step_s: float, n_full: float = 3000.0,
             seed: int = 0) -> tuple[float, list[tuple[str, float, float]]]:
    """A sequential executor on a simulated clock: a run starts only before its ``start_by`` and the
    deadline; one still training at the deadline stops after its current step. Returns the end time and
    every run's (strategy, start, end)."""
    rng = random.Random(seed)
    now, runs = 0.0, []
    made: set[str] = set()  # strategies whose first seed ran at the full data: the final round runs the others
    while (rnd := planner.next_round(now)) is not None:
        measured, timings, outcomes = [], [], {}
        for s in rnd.strategies:
            for _ in range(rnd.seeds - (s in made)):
                start_by = rnd.start_by[s]
                if (start_by is not None and now > start_by) or (rnd.deadline_s is not None and now >= rnd.deadline_s):
                    outcomes[s] = "budget"  # not started
                    continue
                took = true_seconds(s, rnd.fraction)
                if rnd.deadline_s is not None and now + took > rnd.deadline_s:
                    end = rnd.deadline_s + step_s * rng.random()  # interrupted: finishes the step it is in
                    runs.append((s, now, end))
                    now, outcomes[s] = end, "budget"
                    continue
                runs.append((s, now, now + took))
                now += took
                if not rnd.screening:
                    made.add(s)
                n = rnd.fraction * n_full
                measured.append(measure(s, rnd.fraction, curves[s](n), 0.02, n))
                timings.append(RunTiming(s, rnd.fraction, took, 0.8 * took, step_s))
        planner.finish_round(rnd, measured, timings, outcomes)
    return now, runs


@pytest.mark.parametrize("budget_s", [60.0, 200.0, 450.0, 900.0, 5000.0])
@pytest.mark.parametrize("misestimate", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("eta", [1.0, 3.0])
@pytest.mark.parametrize("seeds", [1, 3])
def test_the_budget_is_never_exceeded_by_more_than_the_longest_step(budget_s, misestimate, eta, seeds):
    curves = {"a": curve(0.85), "b": curve(0.84), "c": curve(0.83), "d": curve(0.60)}
    cost = {"a": 300.0, "b": 600.0, "c": 120.0, "d": 40.0}  # seconds at the full data (the truth)
    estimates = {s: t / misestimate for s, t in cost.items()}  # what the estimate said
    step_s = 2.0

    def true_seconds(s: str, fraction: float) -> float:
        return 5.0 + cost[s] * fraction  # start-up and evaluation, then training that scales with the data

    planner = Planner(list(curves), rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", budget_s=budget_s, eta=eta,
                      estimates=estimates, target=3000.0, seeds=seeds)
    end, runs = simulate(planner, curves, true_seconds, step_s=step_s)
    assert end <= budget_s + step_s
    assert all(start < budget_s for _, start, _ in runs)  # nothing starts once the budget is spent
    stopped = planner.stopped
    if budget_s >= 5000 and eta == 1:  # ample: only the hopeless one stops, everyone else reaches the end
        assert set(stopped) == {"d"} and stopped["d"].reason == "behind"
        at_full = [s for s, start, end in runs if end - start > 5.0 + cost[s] * 0.5]  # the runs on all the data
        assert sorted(at_full) == sorted(["a", "b", "c"] * seeds)  # with every seed, the first one made once
    for stop in stopped.values():
        assert stop.reason in ("behind", "budget", "halved", "dominated") and stop.message


def test_no_run_starts_that_its_measured_time_says_will_not_fit():
    """After round 1, run times come from the measured ones (scaled by the data), not the estimates."""
    timings = [RunTiming("a", 0.1, wall_s=30.0, scaling_s=20.0, step_s=0.5)]
    assert predict_seconds("a", 0.3, timings, {"a": 1.0}) == pytest.approx(10.0 + 20.0 * 3)
    assert predict_seconds("b", 0.3, timings, {"b": 100.0}) == pytest.approx(10.0 + 30.0)  # estimate + fixed cost seen
    assert predict_seconds("c", 0.3, timings, {}) is None
    planner = Planner(["a", "b"], rounds=(0.1, 0.3), metric="accuracy", budget_s=100.0, estimates={"a": 50.0, "b": 50.0},
                      eta=1)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("a", 0.1, 0.8, 0.05), measure("b", 0.1, 0.8, 0.05)],
                         [RunTiming("a", 0.1, 30.0, 20.0, 0.5), RunTiming("b", 0.1, 12.0, 5.0, 0.4)])
    rnd = planner.next_round(now_s=42.0)  # a needs 70 s more (42 + 70 > 100), b 22 s
    assert rnd.strategies == ["b"] and planner.stopped["a"].reason == "budget"
    assert rnd.start_by["b"] == pytest.approx(100.0 - 22.0)
    assert planner.longest_step_s == pytest.approx(0.5)


def test_run_times_scale_with_training_examples_when_max_train_samples_caps_the_final_round():
    """300 of a 3,404-example split: rounds at 33, 100 and 300 examples (fractions 0.00979, 0.0294 and 1)."""
    sizes = {0.00979: 33.0, 0.0294: 100.0, 1.0: 300.0}
    timings = [RunTiming("a", 0.0294, wall_s=30.0, scaling_s=20.0)]
    assert predict_seconds("a", 1.0, timings, sizes=sizes) == pytest.approx(10.0 + 20.0 * 3)  # not x34
    assert predict_seconds("b", 1.0, [], {"b": 0.5}, sizes) == pytest.approx(0.5 * 300)  # estimate per example
    planner = Planner(["a", "b"], rounds=tuple(sizes), metric="accuracy", budget_s=100.0,
                      estimates={"a": 0.1, "b": 0.2}, sizes=sizes)
    assert planner.next_round(0.0).seconds == pytest.approx({"a": 3.3, "b": 6.6})


def test_run_times_from_records_scale_training_and_the_cache_s_training_rows_only():
    from tunelab.compare.planner import timings_from_results

    record = {"run_info": {"run_id": "head", "strategy": "head", "data_fraction": 0.1, "status": "success",
                           "wall_time_s": 150.0},
              "train_info": {"train_time_s": 3.0, "cache_time_s": 120.0, "samples_per_s": 50.0, "batch_size": 32},
              "meta_info": {"n_train": 100, "n_validation": 400, "n_test": 500}}
    (timing,) = timings_from_results([record])
    assert timing.scaling_s == pytest.approx(3.0 + 120.0 * 0.1)  # the cache's evaluation rows do not grow
    assert timing.step_s == pytest.approx(32 / 50)
    assert predict_seconds("head", 0.3, [timing]) == pytest.approx(150.0 - 15.0 + 15.0 * 3)


def test_round_fractions_and_the_default_budget():
    assert round_fractions([1.0]) == [0.111, 0.333, 1.0]
    assert round_fractions([0.5, 0.25, 1.0]) == [0.25, 0.5, 1.0]  # given fractions are the rounds
    assert round_fractions([1.0], 100) == [0.333, 1.0]  # 11 examples is too few for a round
    # --max-train-samples 2000 of 3,404: fraction 1 holds those 2,000, and the rounds are fractions of them
    assert round_fractions([1.0], 2000) == [0.111, 0.333, 1.0]
    # the minimum counts training sequences: 64 long texts of ~7 blocks each make rounds, 300 short chats that pack
    # five to a block (60 blocks) make none
    assert round_fractions([1.0], 64) == [1.0]
    assert round_fractions([1.0], 64, sequences_per_example=7.5) == [0.111, 0.333, 1.0]
    assert round_fractions([1.0], 300) == [0.111, 0.333, 1.0]
    assert round_fractions([1.0], 300, sequences_per_example=0.2) == [1.0]
    # ... and a round must train: 12 optimizer steps at least (one epoch of 53 and 160 blocks at batch 32 is 2 and 5)
    one_epoch, ten_epochs = (lambda n: math.ceil(n / 32)), (lambda n: 10 * math.ceil(n / 32))
    assert round_fractions([1.0], 64, sequences_per_example=7.5, steps=one_epoch) == [1.0]
    assert round_fractions([1.0], 64, sequences_per_example=7.5, steps=ten_epochs) == [0.111, 0.333, 1.0]
    assert round_fractions([1.0], 2000, steps=one_epoch) == [0.333, 1.0]  # 7 and 21 steps
    assert default_budget_s({"a": 100.0, "b": 400.0}, ["a", "b"], seeds=2) == pytest.approx(2 * 2 * 500.0)
    assert default_budget_s({"a": 1.0}, ["a"]) == 300.0  # the floor
    assert default_budget_s({"a": 1.0}, ["a", "b"]) is None  # an estimate is missing: no default


def test_without_estimates_the_default_budget_comes_from_the_first_round():
    """No cost measured before training: round 1 runs unbudgeted, then the default formula takes each
    strategy's time on all the data as predicted from its round-1 run."""
    planner = Planner(["a", "b", "c"], [0.1, 1.0], "accuracy", sizes={0.1: 100.0, 1.0: 1000.0},
                      budget_after_first_round=True)
    rnd = planner.next_round(0.0)
    assert planner.budget_s is None and rnd.start_by == {"a": None, "b": None, "c": None}
    measured = [measure(s, 0.1, v, 0.05, 100.0) for s, v in (("a", 0.8), ("b", 0.79))]
    planner.finish_round(rnd, measured, [RunTiming("a", 0.1, 30.0, 20.0, 0.5), RunTiming("b", 0.1, 12.0, 5.0, 0.4)],
                         {"a": "ok", "b": "ok", "c": "failed"}, {"c": "its run failed"})
    # a: 10 + 20 × 10 = 210 s; b: 7 + 5 × 10 = 57 s; c failed (no time): 2 × (210 + 57)
    assert planner.budget_s == pytest.approx(max(300.0, 2 * (210.0 + 57.0)))
    assert planner.summary()["budget_s"] == planner.budget_s


# ----------------------------------------------------------------------------- through the CLI

_POS = ["good", "great", "excellent", "wonderful", "brilliant", "moving"]
_NEG = ["bad", "awful", "terrible", "boring", "dull", "weak"]
_FILL = ["the", "film", "movie", "story", "was", "really", "quite", "and", "acting", "plot"]


@pytest.fixture(scope="module")
def sentiment_csv(tmp_path_factory) -> Path:
    """240 labelled rows, each with two sentiment words: easy to learn, so that a strategy that cannot
    learn (a learning rate of 1e-7) is far behind one that can."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "sentiment.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(240):
            positive = i % 2 == 1
            words = rng.sample(_FILL, 3) + rng.sample(_POS if positive else _NEG, 2)
            rng.shuffle(words)
            writer.writerow([" ".join(words), "pos" if positive else "neg"])
    return path


def test_cli_planned_comparison_stops_one_early_and_the_report_shows_it(tiny_bert_dir, sentiment_csv, tmp_path,
                                                                         capsys, runs_in_process):
    from tunelab.cli.main import main

    common = ["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head,full",
              "--lr-overrides", "head=1e-7,full=3e-3", "--epochs", "6", "--batch-size", "8", "--validation-fraction", "0.4",
              "--data-fractions", "0.5,0.75,1.0", "--no-forgetting", "--no-pre-recommendation"]
    out = tmp_path / "planned"
    assert main([*common, "--out", str(out), "--budget-minutes", "30"]) == 0
    printed = capsys.readouterr().out

    plan = json.loads((out / "compare.json").read_text())
    assert plan["mode"] == "planned" and plan["planning"]["budget_s"] == 1800
    # head (lr 1e-7) never leaves the majority class: after round 1 nothing bounds where it ends, so it goes on
    # unranked; round 2 finds it there again while full learned, and stops it as not learning
    assert plan["planning"]["unranked"] == {"1": ["head"]}
    (stop,) = plan["planning"]["stopped"]
    assert stop["strategy"] == "head" and stop["status"] == "stopped_early" and stop["reason"] == "not learning"
    assert stop["round"] == 2 and stop["data_fraction"] == 0.75 and "--lr-overrides" in stop["message"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["full-f0.5", "full-f0.75", "full-f1", "head-f0.5",
                                                                "head-f0.75"]
    record = json.loads((out / "runs" / "head-f0.75" / "metrics.json").read_text())
    assert record["stopped_early"]["round"] == 2 and record["stopped_early"]["prediction"]["strategy"] == "head"
    # a screening run: validated once, after training; no test evaluation (the final round's runs have one)
    assert record["config"]["screening"] and record["metrics"]["validation"] and not record["metrics"].get("test")
    assert not record.get("artifact") and not (out / "runs" / "head-f0.75" / "model").exists()  # no model kept
    assert not (out / "runs" / "head-f0.75" / "outputs" / "test.npz").exists()
    final = json.loads((out / "runs" / "full-f1" / "metrics.json").read_text())
    assert "stopped_early" not in final and not final["config"]["screening"] and final["metrics"]["test"]["accuracy"] >= 0

    assert "not ranked after round 1: head" in printed and "stopped early: head (not learning)" in printed
    # what each fraction holds, in examples (the lines named only the fractions)
    assert "planned comparison: rounds at data fractions 0.5, 0.75, 1 (48, 72 and 96 training examples)" in printed
    assert "on data fraction 0.75 (72 training examples)" in printed
    assert "on data fraction 1 (96 training examples), the final round" in printed  # not "(96 ...) (the final round)"
    head_line = next(line for line in printed.splitlines() if line.startswith("│ head"))
    assert "stopped" in head_line and "success" not in head_line
    assert "recommended: full" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    md = (out / "report.md").read_text(encoding="utf-8")
    for text in (page, md):
        assert "Stopped early" in text and "stopped early after round 2 (data fraction 0.75)" in text
        assert "After round 1, head went on unranked" in text
        assert "Predicted at full data: estimate (best / worst case)" in text
        assert "5 runs (5 succeeded) over 2 strategies" in text  # head counts though it never reached fraction 1

    # --resume re-uses every finished run and decides the same
    mtime = (out / "runs" / "full-f1" / "metrics.json").stat().st_mtime_ns
    assert main([*common, "--out", str(out), "--budget-minutes", "30", "--resume"]) == 0
    assert "finished earlier, reused" in capsys.readouterr().out
    assert (out / "runs" / "full-f1" / "metrics.json").stat().st_mtime_ns == mtime
    assert json.loads((out / "compare.json").read_text())["planning"]["stopped"][0]["strategy"] == "head"

    # --exhaustive: today's comparison, every strategy at every fraction, nothing stopped
    full_out = tmp_path / "exhaustive"
    assert main([*common, "--out", str(full_out), "--exhaustive"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (full_out / "runs").iterdir()) == ["full-f0.5", "full-f0.75", "full-f1", "head-f0.5",
                                                                     "head-f0.75", "head-f1"]
    plan = json.loads((full_out / "compare.json").read_text())
    assert plan["mode"] == "exhaustive" and "planning" not in plan
    assert all("stopped_early" not in json.loads(p.read_text()) for p in (full_out / "runs").glob("*/metrics.json"))
    assert math.isclose(plan["data_fractions"][-1], 1.0)

def test_rounds_before_the_last_screen_with_one_seed(tiny_bert_dir, sentiment_csv, tmp_path, capsys, runs_in_process):
    from tunelab.cli.main import main

    out = tmp_path / "planned"
    args = ["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head,full",
            "--epochs", "1", "--batch-size", "8", "--data-fractions", "0.5,1.0", "--seeds", "2", "--plan",
            "--no-forgetting", "--no-pre-recommendation", "--out", str(out)]
    assert main(args) == 0
    said = capsys.readouterr().out
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert [r for r in runs if "-f0.5" in r] == ["full-f0.5", "head-f0.5"]  # one seed each
    assert {r for r in runs if "-f1" in r} <= {"full-f1-s42", "full-f1-s43", "head-f1-s42", "head-f1-s43"}
    assert any(r.endswith("-s43") for r in runs)
    # at the full data, seed 42 first; the final round adds the other seed and does not train seed 42 again
    assert re.search(r"round 2/3: head, full on data fraction 1 \([0-9]+ training examples\), seed 42", said)
    assert not [line for line in said.splitlines() if line.startswith("round 3 [") and "-s42" in line]
    assert "over 2 seeds" in said  # the verdict stands on both seeds, the first one's run included
    # --resume: every run of every round is reused, none trains again, and the verdict is the same
    mtime = (out / "runs" / "head-f1-s42" / "metrics.json").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    again = capsys.readouterr().out
    assert "finished earlier, reused" in again and ": training " not in again and "over 2 seeds" in again
    assert (out / "runs" / "head-f1-s42" / "metrics.json").stat().st_mtime_ns == mtime
    # the report said 'it took 0.0 minutes up to the last run' of the resumed invocation, as if training took that
    md = (out / "report.md").read_text(encoding="utf-8")
    n = len(runs)
    assert re.search(rf"; resumed, it took [0-9.]+ minutes up to the last run, reusing {n} of its {n} runs finished "
                     r"earlier \(their time not counted\)", md)

def test_exhaustive_and_a_budget_exclude_each_other(capsys):
    from tunelab.cli.main import main

    assert main(["compare", "--exhaustive", "--budget-minutes", "5"]) == 2
    assert "pick one" in capsys.readouterr().err
    assert main(["compare", "--exhaustive", "--plan"]) == 2
    assert "pick one" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the executors' time limits


def test_a_job_past_its_latest_start_is_not_started_and_leaves_no_record(tmp_path):
    import time

    from tunelab.compare.executors import SKIPPED, Job, LocalExecutor
    from tunelab.config import TrainConfig

    config = TrainConfig(model="nowhere", data="nothing.csv", strategy="head", out=str(tmp_path / "run"))
    job = Job("head", {"config": config.to_dict()}, tmp_path / "run", start_by=time.time() - 1.0)
    started = []
    (record,) = LocalExecutor(isolate=False).run([job], on_start=started.append)
    assert record.run_info.status == SKIPPED and "not started" in record.run_info.error
    assert not started and not (tmp_path / "run").exists()


def test_a_run_still_going_at_the_deadline_is_interrupted_and_recorded_as_stopped_by_the_budget(
        tiny_bert_dir, sentiment_csv, tmp_path):
    """A real worker process: SIGINT at the deadline, the grace period, then the budget's message."""
    import time

    from tunelab.compare.executors import BUDGET_STOP, execute_in_time
    from tunelab.config import TrainConfig

    config = TrainConfig(model=str(tiny_bert_dir), data=str(sentiment_csv), strategy="full", epochs=50, batch_size=8,
                         save_steps=1000, out=str(tmp_path / "run"), forgetting=False, overwrite=True)
    from tunelab.run.isolate import _warm_context, child_environment, warm_up

    warm_up()  # a comparison starts its warm server early; here, wait until it is up (its imports take 5-10 s)
    context = _warm_context(child_environment())
    if context is not None:
        ready = context.Process(target=int)
        ready.start()
        ready.join()
    t0 = time.time()
    record = execute_in_time({"config": config.to_dict(), "split_seed": 42}, tmp_path / "run",
                             deadline=t0 + 4.0, grace_s=5.0)
    took = time.time() - t0
    assert not record.succeeded and record.run_info.error.startswith(BUDGET_STOP)
    assert took <= 4.0 + 5.0 + 1.0  # the deadline, the grace, and the process's exit
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["run_info"]["error"].startswith(BUDGET_STOP)


def test_successive_halving_keeps_the_best_third_and_skips_rounds_once_one_is_left():
    """Five strategies within each other's intervals (nothing is hopeless): the best ⌈5/3⌉ = 2 go on, then 1,
    which trains on the full data at once (the round at a third of the data is skipped: nothing left to decide)."""
    curves = {s: curve(a) for s, a in {"a": 0.86, "b": 0.85, "c": 0.84, "d": 0.83, "e": 0.82}.items()}
    planner = Planner(list(curves), rounds=(1 / 27, 1 / 9, 1 / 3, 1.0), metric="accuracy", target=2700.0)
    run_rounds(planner, curves, half=0.08, n_full=2700.0)
    assert [r.fraction for r in planner.done_] == [pytest.approx(1 / 27), pytest.approx(1 / 9), 1.0]
    assert [sorted(r.strategies) for r in planner.done_] == [["a", "b", "c", "d", "e"], ["a", "b"], ["a"]]
    assert planner.done_[-1].final
    stopped = planner.stopped
    assert {s: stop.reason for s, stop in stopped.items()} == {"b": "halved", "c": "halved", "d": "halved", "e": "halved"}
    assert stopped["c"].round == 1 and stopped["b"].round == 2
    assert "not among the best 2 of the 5 left" in stopped["c"].message and stopped["c"].prediction is not None
    # within the leader's reach (intervals of ±0.08 around 0.84 and 0.86): cut for the budget, not shown worse
    assert "its interval reaches a's" in stopped["c"].message and "--halving 1 or --exhaustive" in stopped["c"].message
    assert planner.summary()["halving"] == 3.0


def test_with_eta_1_every_strategy_that_can_catch_up_goes_on_and_a_lone_one_trains_on_the_full_plan_at_once():
    curves = {"a": curve(0.86), "b": curve(0.85), "c": curve(0.84)}
    planner = Planner(list(curves), rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=900.0, eta=1)
    run_rounds(planner, curves, half=0.08, n_full=900.0)
    assert [sorted(r.strategies) for r in planner.done_] == [["a", "b", "c"]] * 3 and planner.stopped == {}
    planner = Planner(["only"], rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=900.0)
    run_rounds(planner, {"only": curve(0.8)}, n_full=900.0)
    assert [r.fraction for r in planner.done_] == [1.0] and planner.stopped == {}
    planner = Planner(["only"], rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=900.0, seeds=3)
    run_rounds(planner, {"only": curve(0.8)}, n_full=900.0)
    assert [(r.fraction, r.seeds) for r in planner.done_] == [(1.0, 3)]


def run_seeded_rounds(planner: Planner, curves: dict, *, screening_half: float, full_half: float,
                      n_full: float = 3000.0) -> None:
    """Like :func:`run_rounds`, with wider intervals before the full data than at it."""
    while (rnd := planner.next_round(now_s=0.0)) is not None:
        n, half = rnd.fraction * n_full, screening_half if rnd.screening else full_half
        planner.finish_round(rnd, [measure(s, rnd.fraction, curves[s](n), half, n) for s in rnd.strategies])


def test_with_several_seeds_the_full_data_runs_one_seed_first_and_the_rest_for_those_that_remain():
    curves = {"leader": curve(0.85), "close": curve(0.845), "behind": curve(0.80)}
    planner = Planner(list(curves), rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=3000.0, eta=1, seeds=3)
    run_seeded_rounds(planner, curves, screening_half=0.08, full_half=0.01)
    assert [(r.fraction, r.seeds, r.screening, r.final) for r in planner.done_] == [
        (pytest.approx(1 / 9), 1, True, False), (pytest.approx(1 / 3), 1, True, False),
        (1.0, 1, False, False), (1.0, 3, False, True)]
    assert [sorted(r.strategies) for r in planner.done_] == [["behind", "close", "leader"]] * 3 + [["close", "leader"]]
    stop = planner.stopped["behind"]  # its gap was inside the screening rounds' intervals, not inside one seed's
    assert (stop.reason, stop.round, stop.fraction) == ("behind", 3, 1.0) and stop.prediction.optimistic < 0.84
    assert stop.message.startswith("after round 3 (data fraction 1, seed 1 of 3) its validation accuracy is at best")
    assert [m.fraction for m in planner.measurements_ if m.strategy == "leader"].count(1.0) == 1  # the 3 seeds' one
    assert planner.summary()["rounds"][-1]["seeds"] == 3


def test_one_seed_at_the_full_data_halves_like_a_round_and_a_lone_finalist_gets_every_seed():
    curves = {"a": curve(0.86), "b": curve(0.85)}
    planner = Planner(list(curves), rounds=(1.0,), metric="accuracy", target=3000.0, seeds=3)
    run_seeded_rounds(planner, curves, screening_half=0.08, full_half=0.05)
    assert [(r.seeds, r.strategies) for r in planner.done_] == [(1, ["a", "b"]), (3, ["a"])]
    assert planner.stopped["b"].reason == "halved"
    planner = Planner(list(curves), rounds=(1.0,), metric="accuracy", target=3000.0, seeds=1)
    run_seeded_rounds(planner, curves, screening_half=0.08, full_half=0.05)
    assert [(r.seeds, r.strategies, r.final) for r in planner.done_] == [(1, ["a", "b"], True)]  # one seed: one rung


def test_level_strategies_at_the_cut_go_on_cheapest_first_whatever_their_order():
    """Three strategies measured level, one kept (η = 3): the cheapest goes on, listed first or last, and the
    others' reason says they were level with it and dearer, not "not among the best"."""
    for order in (["pricey", "middle", "cheap"], ["cheap", "middle", "pricey"]):
        planner = Planner(order, rounds=(0.1, 1.0), metric="accuracy", target=1000.0)
        rnd = planner.next_round(0.0)
        seconds = {"cheap": 10.0, "middle": 30.0, "pricey": 60.0}
        planner.finish_round(rnd, [measure(s, 0.1, 0.80, 0.06, 100) for s in order],
                             [RunTiming(s, 0.1, seconds[s], seconds[s] - 2) for s in order])
        final = planner.next_round(0.0)
        assert final.strategies == ["cheap"]
        assert {s: stop.reason for s, stop in planner.stopped.items()} == {"middle": "halved", "pricey": "halved"}
        assert "is level with that of cheap" in planner.stopped["pricey"].message
        assert "cost less" in planner.stopped["pricey"].message


@pytest.mark.parametrize(("cheap", "pricey", "half", "dominated"), [
    (0.80, 0.78, 0.01, True),    # at best 0.79, and cheap at worst 0.79: it cannot end above the cheaper one
    (0.80, 0.80, 0.01, False),   # level: a tie on a small round says nothing of how each goes on learning
    (0.80, 0.79, 0.06, False),   # below, within the intervals (it was dominated: 13 points lost on a user's data)
    (0.79, 0.82, 0.03, False),   # above
])
def test_a_dearer_strategy_that_cannot_end_above_a_cheaper_one_is_dominated(cheap, pricey, half, dominated):
    """η = 1.5 keeps 2 of 3; of those two, the dearer one stops only when its optimistic prediction is not above the
    cheaper one's pessimistic prediction. A walk-through's 20-class data tied head and last-n on the first round:
    last-n was stopped as dominated, and head, recommended, ended 13 points below it."""
    planner = Planner(["cheap", "pricey", "worst"], rounds=(0.1, 1.0), metric="accuracy", eta=1.5, target=1000.0)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("cheap", 0.1, cheap, half, 100), measure("pricey", 0.1, pricey, half, 100),
                               measure("worst", 0.1, 0.75, half, 100)],
                         [RunTiming("cheap", 0.1, 10.0, 8.0), RunTiming("pricey", 0.1, 60.0, 55.0),
                          RunTiming("worst", 0.1, 5.0, 4.0)])
    final = planner.next_round(0.0)
    assert planner.stopped["worst"].reason in ("halved", "behind")  # the cheapest, but not among the best two
    if dominated:
        stop = planner.stopped["pricey"]
        assert final.strategies == ["cheap"] and stop.reason == "dominated" and stop.leader.strategy == "cheap"
        assert "cost less" in stop.message
    else:
        assert sorted(final.strategies) == ["cheap", "pricey"]


@pytest.mark.parametrize(("cheap", "pricey", "dominated"), [(0.60, 0.60, True), (0.612, 0.600, True), (0.60, 0.62, False)])
def test_at_the_full_datas_first_seed_a_dearer_strategy_measured_no_better_is_dominated(cheap, pricey, dominated):
    """50 labels, 3 seeds: no round of less data, so the first rung is one seed of each strategy at the full data.
    Halving keeps two (lora and full on a user's 50 reviews, 0.612 and 0.600). No more data is coming, so neither
    can go on learning at another rate: the dearer one, measured no better, is dominated, and only the cheaper gets
    the other seeds (on a round of less data the same tie keeps both: the test above)."""
    names = ["cheap", "pricey", "third"]
    planner = Planner(names, rounds=(1.0,), metric="accuracy", eta=1.5, target=50.0, seeds=3)
    rnd = planner.next_round(0.0)
    assert (rnd.fraction, rnd.seeds, rnd.screening) == (1.0, 1, False)
    planner.finish_round(rnd, [measure("cheap", 1.0, cheap, 0.06, 50), measure("pricey", 1.0, pricey, 0.06, 50),
                               measure("third", 1.0, 0.55, 0.06, 50)],
                         [RunTiming("cheap", 1.0, 40.0, 35.0), RunTiming("pricey", 1.0, 60.0, 55.0),
                          RunTiming("third", 1.0, 30.0, 25.0)])
    final = planner.next_round(0.0)
    assert final.seeds == 3
    if dominated:
        stop = planner.stopped["pricey"]
        assert final.strategies == ["cheap"] and stop.reason == "dominated"
        assert "at the full data, where only seeds are left to run" in stop.message
    else:
        assert sorted(final.strategies) == ["cheap", "pricey"]


def test_a_round_where_no_strategy_beats_a_constant_predictor_halves_nothing():
    """At a ninth of the data every strategy is within noise of always predicting the majority class: its order
    says nothing, so all go on; the next round measures something, and halving cuts."""
    names = ["a", "b", "c", "d", "e"]
    planner = Planner(names, rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=900.0)
    rnd = planner.next_round(0.0)
    near_chance = dict(zip(names, (0.56, 0.55, 0.53, 0.52, 0.50), strict=True))
    planner.finish_round(rnd, [Measurement(s, 1 / 9, v, v - 0.07, v + 0.07, 100, chance=0.5) for s, v in near_chance.items()])
    rnd = planner.next_round(0.0)
    assert sorted(rnd.strategies) == names and planner.stopped == {} and planner.summary()["not_halved_after"] == [1]
    # the console says why nothing was cut, with the numbers (it said nothing: the next round simply held all five)
    from tunelab.compare.runner import _say_stops

    said: list[str] = []
    _say_stops(planner, said.append, 0, set())
    assert said == ["  after round 1 (data fraction 0.111111) no strategy is cut on its score: none is yet distinguishable "
                    "from always predicting the most frequent class (0.5000) on validation accuracy (a 0.5600 [0.4900, "
                    "0.6300], b 0.5500 [0.4800, 0.6200], c 0.5300 [0.4600, 0.6000], d 0.5200 [0.4500, 0.5900], "
                    "e 0.5000 [0.4300, 0.5700], 95 % intervals), so their order says nothing"]
    assert planner.quiet_message(2) is None
    # a budget stop in the same pass comes after the line, which does not say that every strategy goes on
    planner.stops_.append(Stop("e", 1, 1 / 9, "budget", "its round-2 run was predicted to take 400 s, more than 100 s"))
    said.clear()
    _say_stops(planner, said.append, 0, set())
    assert said[0].startswith("  after round 1") and said[1].startswith("  stopped early: e (budget)")
    apart = dict(zip(names, (0.80, 0.78, 0.76, 0.74, 0.72), strict=True))
    planner.finish_round(rnd, [Measurement(s, 1 / 3, v, v - 0.05, v + 0.05, 300, chance=0.5) for s, v in apart.items()])
    final = planner.next_round(0.0)
    assert sorted(final.strategies) == ["a", "b"] and {s.reason for s in planner.stopped.values()} == {"halved"}


def test_a_strategy_still_at_the_constant_predictor_goes_on_unranked_while_the_others_are_cut():
    """A 21-class ticket log, a ninth of it: last-n learned (0.67), head a little, and full (lr 5e-5, ten steps) still
    predicts the majority class everywhere. Full's measured interval bounds nothing about where it ends: it is neither
    stopped as behind nor ranked; head, which learned and is far behind, is stopped. The next round ranks full."""
    planner = Planner(["head", "last-n", "full"], rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=1400.0)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [Measurement("head", 1 / 9, 0.60, 0.58, 0.62, 157, chance=0.52),
                               Measurement("last-n", 1 / 9, 0.67, 0.64, 0.70, 157, chance=0.52),
                               Measurement("full", 1 / 9, 0.52, 0.46, 0.59, 157, chance=0.52)])
    rnd = planner.next_round(0.0)
    assert rnd.strategies == ["last-n", "full"] or sorted(rnd.strategies) == ["full", "last-n"]
    assert planner.stopped["head"].reason == "behind" and "full" not in planner.stopped
    assert planner.summary()["unranked"] == {"1": ["full"]}
    planner.finish_round(rnd, [Measurement("last-n", 1 / 3, 0.80, 0.76, 0.84, 470, chance=0.52),
                               Measurement("full", 1 / 3, 0.70, 0.66, 0.74, 470, chance=0.52)])
    final = planner.next_round(0.0)
    assert final.strategies == ["last-n"] and planner.stopped["full"].reason in ("behind", "halved")
    assert planner.summary()["unranked"] == {"1": ["full"]}


def test_strategies_going_on_unranked_do_not_squeeze_the_ranked_ones_quota():
    """A 90/10 binary set (a user walk-through): after round 1 head and lora had left the majority-class score, one
    validation example apart, and the other three had not. The quota of ⌈n / η⌉ was taken from the two ranked, so
    lora was halved while the three at chance went on unranked. It is taken from the five left: both go on."""
    names = ["head", "last-n", "bitfit", "lora", "full"]
    planner = Planner(names, rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=900.0)
    rnd = planner.next_round(0.0)
    values = {"head": (0.95, 0.92, 0.98), "lora": (0.94, 0.91, 0.97)}
    planner.finish_round(rnd, [Measurement(s, 1 / 9, *values.get(s, (0.90, 0.86, 0.94)), 100, chance=0.90)
                               for s in names])
    rnd = planner.next_round(0.0)
    assert sorted(rnd.strategies) == sorted(names) and planner.stopped == {}
    assert sorted(planner.summary()["unranked"]["1"]) == ["bitfit", "full", "last-n"]


def test_the_chance_level_is_the_majority_class_score_on_the_saved_examples():
    import numpy as np

    from tunelab.advice.verdict import chance_level as _chance
    from tunelab.run.outputs import ExampleOutputs

    outputs = ExampleOutputs(labels=np.array([0, 0, 0, 1, 2]), predictions=np.array([0, 1, 2, 1, 2]))
    assert _chance(outputs.labels, "accuracy") == pytest.approx(0.6)
    assert _chance(outputs.labels, "f1_macro") == pytest.approx((2 * 0.6 / 1.6) / 3)
    assert _chance(None, "accuracy") is None
    assert _chance(ExampleOutputs(loss_sums=np.ones(3), token_counts=np.ones(3)).labels, "perplexity") is None


def test_the_recommendation_names_the_round_of_a_stop_once():
    """A halving or 'behind' stop's message already says after which round; a budget stop's does not."""
    from tunelab.compare.runner import stopped_early_reasons

    planning = {"stopped": [
        {"strategy": "lora", "status": "stopped_early", "round": 1, "data_fraction": 0.1, "reason": "halved",
         "message": "after round 1 (data fraction 0.1) its predicted validation accuracy at the full data, 0.61, is not among the best 2"},
        {"strategy": "full", "status": "stopped_early", "round": 2, "data_fraction": 0.3, "reason": "budget",
         "message": "its round-3 run at data fraction 1 was predicted to take 90 s, more than the 40 s left of the 300 s budget"},
    ], "strategies": {"bitfit": {"status": "finalist"}}, "round_fractions": [0.1, 0.3, 1.0]}
    lora, full = stopped_early_reasons(planning)
    assert lora == ("lora was stopped early: after round 1 (data fraction 0.1) its predicted validation accuracy at the "
                    "full data, 0.61, is not among the best 2.")
    assert full.startswith("full was stopped early, after round 2 (data fraction 0.3): its round-3 run") and full.count("round 2") == 1


def test_when_the_finalists_learned_nothing_the_recommendation_names_stopped_strategies_that_had():
    """debates-2016 with 100 labels (session 36): last-n went on alone after the full data's first seed and, over its
    seeds, fell to the majority class's score; lora, full and bitfit had measured clear of it when they were stopped.
    The recommendation says so, and that --exhaustive trains them to the end; head, not clear, is not named."""
    from tunelab.compare.runner import learned_before_stopping

    def stop(strategy, measured, low):
        return {"strategy": strategy, "status": "stopped_early", "round": 2, "data_fraction": 1.0, "reason": "halved",
                "prediction": {"measured": measured, "pessimistic": low, "estimate": measured}}

    planning = {"stopped": [stop("full", 0.528, 0.434), stop("head", 0.472, 0.377), stop("lora", 0.557, 0.462)]}
    nothing = {"metric": "accuracy", "chance": {"split": "validation", "value": 0.406, "learned": False}}
    (line,) = learned_before_stopping(planning, nothing)
    assert line.startswith("Before the rounds stopped them, lora (measured 0.557, at least 0.462 by its interval, "
                           "round 2) and full (measured 0.528, at least 0.434")
    assert "head" not in line and "--exhaustive" in line and "0.406" in line
    assert learned_before_stopping(planning, {**nothing, "chance": {**nothing["chance"], "learned": True}}) == []
    assert learned_before_stopping({"stopped": [stop("head", 0.472, 0.377)]}, nothing) == []


def test_the_verdict_leaves_out_the_one_seed_run_of_a_strategy_stopped_at_the_full_data():
    from tunelab.compare.runner import verdict_runs
    from tunelab.run.record import RunRecord

    stop = {"strategy": "lora", "status": "stopped_early", "round": 2, "data_fraction": 1.0, "reason": "halved"}

    def record(strategy, fraction, seed, status="success", stopped=None):
        return RunRecord.from_dict({"run_info": {"strategy": strategy, "data_fraction": fraction, "seed": seed,
                                                 "status": status}, **({"stopped_early": stopped} if stopped else {})})

    runs = [record("lora", 0.1, 42), record("head", 0.1, 42, stopped={**stop, "strategy": "head", "data_fraction": 0.1}),
            record("lora", 1.0, 42, stopped=stop), record("bitfit", 1.0, 42), record("bitfit", 1.0, 43),
            record("full", 1.0, 42, status="failed", stopped={**stop, "strategy": "full", "reason": "budget"})]
    kept = verdict_runs(runs, {"stopped": [stop]})
    assert [(r.run_info.strategy, r.run_info.data_fraction) for r in kept] == [
        ("lora", 0.1), ("head", 0.1), ("bitfit", 1.0), ("bitfit", 1.0), ("full", 1.0)]
    assert verdict_runs(runs, None) == runs  # an exhaustive comparison stops nothing


def test_the_report_shows_a_strategy_stopped_at_the_full_data_with_its_numbers_marked_stopped_early():
    from tunelab.report.tables import results_table
    from tunelab.run.record import RunRecord

    stop = {"strategy": "lora", "status": "stopped_early", "round": 2, "data_fraction": 1.0, "reason": "halved",
            "message": "after round 2 (data fraction 1, seed 1 of 3) its validation accuracy, 0.7, is not among ..."}

    def record(strategy, seed, value):
        return RunRecord.from_dict({"run_info": {"strategy": strategy, "data_fraction": 1.0, "seed": seed, "status": "success"},
                                    "metrics": {"validation": {"accuracy": value}, "test": {"accuracy": value}}})

    runs = [record("lora", 42, 0.70), *(record("bitfit", seed, 0.8) for seed in (42, 43, 44))]
    rows = {r["strategy"]: r for r in results_table(runs, recommendation={"metric": "accuracy", "ranking": [],
                                                                        "planning": {"stopped": [stop]}})}
    assert rows["lora"]["status"] == "stopped early (1 seed)" and rows["lora"]["stop"] == stop
    assert rows["lora"]["val_mean"] == pytest.approx(0.70)  # measured: its numbers stay
    assert rows["bitfit"]["status"] == "success" and rows["bitfit"]["stop"] is None and rows["bitfit"]["n"] == 3


def test_a_comparison_that_names_no_mode_runs_in_rounds_except_over_several_fractions_or_resuming_one_made_so(
        tmp_path):
    """The main job plans by default (issue 16: ``--exhaustive`` keeps the old behaviour). Several data fractions are
    learning curves the user asked for, so they train to the end; --resume goes on the way compare.json says the
    folder ran, so that a comparison made exhaustively is not screened again."""
    from tunelab.compare.runner import PLAN_NAME, CompareOptions, exhaustive_by_default

    assert exhaustive_by_default(CompareOptions(), tmp_path) is False
    assert exhaustive_by_default(CompareOptions(data_fractions=(0.25, 0.5, 1.0)), tmp_path) is True
    assert exhaustive_by_default(CompareOptions(data_fractions=(0.25, 1.0), budget_minutes=5), tmp_path) is False
    (tmp_path / PLAN_NAME).write_text(json.dumps({"mode": "exhaustive"}))
    assert exhaustive_by_default(CompareOptions(resume=True), tmp_path) is True
    assert exhaustive_by_default(CompareOptions(), tmp_path) is False  # not resuming: the folder's plan is not read
    assert exhaustive_by_default(CompareOptions(resume=True, overwrite=True), tmp_path) is False
    (tmp_path / PLAN_NAME).write_text(json.dumps({"mode": "planned"}))
    assert exhaustive_by_default(CompareOptions(resume=True, data_fractions=(0.5, 1.0)), tmp_path) is False
    (tmp_path / PLAN_NAME).write_text("{not json")
    assert exhaustive_by_default(CompareOptions(resume=True), tmp_path) is False


def test_runs_the_budget_stopped_are_stops_not_failures(tmp_path, capsys):
    """A run the budget left unstarted or interrupted is not called failed: the verdict leaves it to the stop's own
    line, the console counts it apart, and a comparison where nothing finished says the budget ran out."""
    from pathlib import Path

    from tunelab.cli.compare import _exit_code
    from tunelab.compare.executors import BUDGET_STOP, skipped_record
    from tunelab.compare.runner import CompareResult, stopped_early_reasons, verdict_runs
    from tunelab.config import TrainConfig
    from tunelab.run.record import RunRecord

    def config(strategy):
        return TrainConfig(model="m", data="d.csv", strategy=strategy, out=str(tmp_path / strategy)).to_dict()

    interrupted = RunRecord.failure(config("head"), f"{BUDGET_STOP} (14 s into the run); tunelab compare --resume ...")
    broken = RunRecord.failure(config("full"), "RuntimeError: out of memory")
    unstarted = skipped_record({"config": config("lora")}, "not started: the comparison's time budget had run out")
    stops = [{"strategy": s, "status": "stopped_early", "round": 1, "data_fraction": 1.0, "reason": "budget",
              "message": "not started"} for s in ("head", "lora")]
    planning = {"stopped": stops, "strategies": {}, "round_fractions": [1.0]}
    assert verdict_runs([interrupted, broken], planning) == [broken]  # the stopped one is told as a stop
    assert verdict_runs([interrupted, broken], None) == [interrupted, broken]  # exhaustive: every run

    result = CompareResult(out=tmp_path, results=[interrupted, broken], recommendation={}, report={})
    assert result.failed == [broken] and result.budget_stopped == [interrupted]
    lines = stopped_early_reasons(planning)
    assert lines[0].startswith("No run finished within the time budget, so nothing was measured")

    nothing = CompareResult(out=tmp_path, results=[interrupted, unstarted], recommendation={}, report={"csv": Path("x")})
    assert _exit_code(nothing) == 1
    err = capsys.readouterr().err
    assert "no run finished within the time budget" in err and "every run failed" not in err

    # a run stopped by Ctrl-C (SIGINT to it alone) is not a failure either, and the verdict without it is not final
    from tunelab.run.worker import INTERRUPTED

    stopped = RunRecord.failure(config("lora"), INTERRUPTED + "training stopped at step 14 of 60; checkpoint saved")
    ok = RunRecord.failure(config("head"), "x")
    ok.run_info.status = "success"
    partial = CompareResult(out=tmp_path, results=[ok, stopped, broken], recommendation={}, report={})
    assert partial.interrupted == [stopped] and partial.failed == [broken]
    assert _exit_code(partial) == 1 and "1 run(s) were interrupted before their end" in capsys.readouterr().err


def test_data_fractions_are_fractions_of_the_capped_training_split(sentiment_csv):
    """--max-train-samples 120 --data-fractions 0.25,...: 30, 60, 90 and 120 nested examples. Before, a fraction was
    taken of the whole split and the cap cut it again: every fraction above the cap's share trained on 120 different
    examples, and the learning-curve fit then failed on the repeated sizes, losing the report."""
    from tunelab.advice.learning import fit_learning_curves
    from tunelab.config import TrainConfig
    from tunelab.run.training import load_data

    rows = {}
    for fraction in (0.25, 0.5, 0.75, 1.0):
        data = load_data(TrainConfig(model="m", data=str(sentiment_csv), max_train_samples=120, data_fraction=fraction))
        rows[fraction] = set(data.train["text"])
    assert [len(r) for r in rows.values()] == [30, 60, 90, 120]
    assert rows[0.25] <= rows[0.5] <= rows[0.75] <= rows[1.0]
    # two fractions one example apart in size make one point of the curve, not an error
    curves = fit_learning_curves({"head": [(30, [0.6]), (30, [0.62]), (60, [0.7]), (90, [0.74]), (120, [0.76])]},
                                 "accuracy", n_fractions=5)
    assert list(curves.curves["head"].n) == [30, 60, 90, 120]


@pytest.mark.parametrize(("flag", "value"), [("--memory-gb", "0"), ("--max-train-minutes", "-1"),
                                             ("--run-timeout", "-1"), ("--max-forgetting", "-1"), ("--alpha", "2"),
                                             ("--tolerance", "-0.1"), ("--data-fractions", "0,1")])
def test_limits_no_run_can_meet_are_refused_before_training(flag, value, capsys):
    """Each said what it must be and what was given, not what to do: it now names a value to pass and what leaving the
    flag out gives."""
    from tunelab.cli.main import main

    assert main(["compare", "--strategies", "head,full", flag, value, "--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must " in err and f"got {value.split(',')[0]}: pass e.g. " in err and "Traceback" not in err
    assert ", or leave it out for " in err


def test_a_forgetting_limit_without_the_measurement_is_refused_before_training(capsys):
    """--max-forgetting with --no-forgetting: no run measured it, so the limit set nothing aside and the verdict read as
    if every strategy were within it."""
    from tunelab.cli.main import main

    assert main(["compare", "--strategies", "head,full", "--max-forgetting", "0.05", "--no-forgetting",
                 "--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err
    assert "--max-forgetting 0.05 limits what --no-forgetting does not measure" in err and "Traceback" not in err


def test_a_second_comparison_into_a_folder_in_use_is_refused_in_one_line(tmp_path, capsys, tiny_bert_dir,
                                                                           sentiment_csv):
    """Two comparisons writing one --out at once would train and record the same runs twice over: the second is
    refused in one line, naming the process that holds the folder; the lock goes with the first."""
    import os

    from tunelab.cli.main import main
    from tunelab.io import LOCK_NAME, folder_lock

    out = tmp_path / "cmp"
    out.mkdir()
    with folder_lock(out, "tunelab compare"):  # a lock of another open file: held against this process too
        code = main(["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head",
                     "--epochs", "1", "--no-pre-recommendation", "--no-forgetting", "--out", str(out)])
        assert code == 2
        assert f"is in use by another tunelab compare (process {os.getpid()})" in capsys.readouterr().err
        assert not (out / "runs").exists()
    assert not (out / LOCK_NAME).exists()  # released and removed


def test_the_advice_before_a_comparison_measures_the_domain_as_tunelab_recommend_does(monkeypatch):
    """The comparison's advice before training reads the domain on recommend's own sample (the one the advice was
    calibrated on): with half of it, the same data and model gave other distances than `tunelab recommend`."""
    import inspect

    import tunelab.advice.recommend as advice
    from tunelab.compare.runner import _pre_recommendation
    from tunelab.config import TrainConfig

    asked = {}
    default = inspect.signature(advice.recommend).parameters["sample_size"].default
    real = advice.recommend

    def fake(model, data, **kwargs):
        asked.update(kwargs)
        return {"strategy": None}

    fake.__signature__ = inspect.signature(real)  # the options compare passes are those recommend takes
    monkeypatch.setattr(advice, "recommend", fake)
    _pre_recommendation(TrainConfig(model="m", data="d.csv"), ["head", "full"], None, None, None)
    assert asked and asked.get("sample_size", default) == default == 64


def test_overwrite_replaces_every_run_a_folder_holds(tmp_path, capsys, tiny_bert_dir, sentiment_csv, runs_in_process):
    """--overwrite replaces what --out holds: the runs of the earlier comparison that the new plan no longer makes go
    too (six stale runs of 88 MB each stayed beside the new one)."""
    from tunelab.cli.main import main

    out = tmp_path / "cmp"
    stale = out / "runs" / "last-n-s43"
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")
    code = main(["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head",
                 "--epochs", "1", "--exhaustive", "--no-pre-recommendation", "--no-forgetting", "--overwrite", "-q",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["head"]
    # what no run wrote is not deleted: one line, exit 2
    (out / "runs" / "my-notes.txt").write_text("mine")
    again = ["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head", "--epochs", "1",
             "--exhaustive", "--no-pre-recommendation", "--no-forgetting", "--overwrite", "-q", "--out", str(out)]
    assert main(again) == 2
    assert f"--overwrite would delete {out / 'runs' / 'my-notes.txt'}, which no tunelab run wrote" in capsys.readouterr().err
    assert (out / "runs" / "my-notes.txt").exists() and (out / "runs" / "head" / "metrics.json").exists()

def test_resume_of_a_folder_without_a_comparison_says_it_starts_one(tmp_path, caplog, tiny_bert_dir, sentiment_csv,
                                                                       runs_in_process):
    from tunelab.cli.main import main

    with caplog.at_level("WARNING", logger="tunelab"):
        code = main(["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head",
                     "--epochs", "1", "--exhaustive", "--no-pre-recommendation", "--no-forgetting", "--resume", "-q",
                     "--out", str(tmp_path / "new")])
    assert code == 0
    assert f"--resume: {tmp_path / 'new'} holds no comparison to resume; starting one" in caplog.text

def test_at_the_full_datas_first_seed_a_strategy_near_chance_is_ranked_not_kept_unranked():
    """After the full data's first seed the rounds bring other seeds, not more data: a strategy still near the
    constant predictor there has measured where it ends, and is ranked with the others. It went on unranked as a
    finalist while a better strategy, not shown worse than the leader, was cut (a user walk-through)."""
    planner = Planner(["head", "last-n", "bitfit", "lora"], rounds=(1.0,), metric="accuracy", target=270.0, seeds=2)
    rnd = planner.next_round(0.0)
    assert rnd.seeds == 1 and not rnd.final
    planner.finish_round(rnd, [Measurement("lora", 1.0, 0.758, 0.683, 0.833, 270, chance=0.525),
                               Measurement("last-n", 1.0, 0.708, 0.625, 0.783, 270, chance=0.525),
                               Measurement("bitfit", 1.0, 0.658, 0.575, 0.742, 270, chance=0.525),
                               Measurement("head", 1.0, 0.617, 0.525, 0.700, 270, chance=0.525)])
    final = planner.next_round(0.0)
    assert final.seeds == 2 and "head" not in final.strategies and "head" in planner.stopped
    assert planner.summary()["unranked"] == {}


def test_a_one_round_plan_names_the_rule_that_left_out_the_rounds(tiny_bert_dir, sentiment_csv, tmp_path, capsys,
                                                                   runs_in_process):
    """168 training examples: a third holds 56, above the 24-example minimum; at batch 32 for one epoch it trains 2
    optimizer steps, under the 12-step minimum, and that is the reason given (the message named the 24 examples)."""
    from tunelab.cli.main import main

    args = ["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head,bitfit",
            "--epochs", "1", "--batch-size", "32", "--plan", "--no-forgetting", "--no-pre-recommendation",
            "--out", str(tmp_path / "one")]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "planned comparison: one round" in said
    assert "a round of a third of them would train 2 optimizer steps, fewer than the planner's minimum of 12" in said

@pytest.mark.parametrize("verdict", ["cheap", None])
def test_at_the_full_datas_first_seed_the_verdicts_pick_gets_the_other_seeds(verdict):
    """rotten-tomatoes with 300 labels, 3 seeds: at the full data's first seed last-n measured 0.676 and lora 0.688,
    and the paired comparison could not separate them. The verdict recommends the cheaper of two it cannot separate,
    so the seeds left go to its pick, not to the better estimate (which went on, then lost the verdict to nothing:
    a lone finalist). Without a verdict (a caller that passes none) the cut keeps the better estimate, as before."""
    planner = Planner(["cheap", "pricey"], rounds=(1.0,), metric="accuracy", target=300.0, seeds=3)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("cheap", 1.0, 0.676, 0.056, 300), measure("pricey", 1.0, 0.688, 0.056, 300)],
                         [RunTiming("cheap", 1.0, 17.0, 15.0), RunTiming("pricey", 1.0, 46.0, 44.0)], verdict=verdict)
    final = planner.next_round(0.0)
    assert final.seeds == 3 and final.final
    if verdict:
        assert final.strategies == ["cheap"]
        stop = planner.stopped["pricey"]
        assert stop.reason == "halved" and stop.leader.strategy == "cheap"
        assert stop.message.startswith("after round 1 (data fraction 1, seed 1 of 3) its validation accuracy, 0.6880, "
                                       "is above cheap's 0.6760, but the verdict on these runs picks cheap")
    else:
        assert final.strategies == ["pricey"] and planner.stopped["cheap"].reason == "halved"


def test_the_verdicts_pick_goes_first_within_the_quota_and_a_better_estimate_fills_the_rest():
    """Five at the full data's first seed keep two (η = 3): the verdict's pick, and the best estimate beside it, so
    that the other seeds can still separate them; a dearer one measured no better than the pick is dominated. A
    screening round's verdict, before any strategy has shown a learning rate (round 1), is ignored."""
    values = {"head": 0.70, "last-n": 0.72, "bitfit": 0.71, "lora": 0.74, "full": 0.73}
    seconds = {"head": 2.0, "last-n": 17.0, "bitfit": 40.0, "lora": 46.0, "full": 60.0}
    planner = Planner(list(values), rounds=(1.0,), metric="accuracy", target=300.0, seeds=3)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure(s, 1.0, v, 0.05, 300) for s, v in values.items()],
                         [RunTiming(s, 1.0, t, t - 1) for s, t in seconds.items()], verdict="head")
    assert sorted(planner.next_round(0.0).strategies) == ["head", "lora"]
    planner = Planner(list(values), rounds=(0.3, 1.0), metric="accuracy", target=300.0)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure(s, 0.3, v, 0.05, 90) for s, v in values.items()],
                         [RunTiming(s, 0.3, t, t - 1) for s, t in seconds.items()], verdict="head")
    assert sorted(planner.next_round(0.0).strategies) == ["full", "lora"]


def _two_left_after_round_two(cheap: tuple[float, float] = (0.642, 0.739), pricey: tuple[float, float] = (0.640, 0.745),
                              margin: float | None = 0.03):
    """The demo's path (minilm + rotten-tomatoes, 2,000 examples): after round 1 (222 examples) last-n and lora are
    left; round 2 (667 examples) measures them 0.739 and 0.745 on 486 validation examples, which the paired comparison
    cannot separate, and round 3 is the full data. ``cheap``, ``pricey``: the two strategies' values in rounds 1 and 2."""
    first = {"low": 0.597, "mid": 0.628, "high": 0.630, "cheap": cheap[0], "pricey": pricey[0]}
    seconds = {"low": 1.0, "mid": 8.7, "high": 13.0, "cheap": 4.3, "pricey": 10.5}
    planner = Planner(list(first), rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=2000.0)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure(s, rnd.fraction, v, 0.043, 222) for s, v in first.items()],
                         [RunTiming(s, rnd.fraction, t, t - 0.5) for s, t in seconds.items()])
    rnd = planner.next_round(0.0)
    assert sorted(rnd.strategies) == ["cheap", "pricey"]
    planner.finish_round(rnd, [measure("cheap", rnd.fraction, cheap[1], 0.039, 667),
                               measure("pricey", rnd.fraction, pricey[1], 0.039, 667)],
                         [RunTiming(s, rnd.fraction, 3 * seconds[s], 3 * seconds[s] - 0.5) for s in rnd.strategies],
                         verdict="cheap", verdict_margin=None if margin is None else ("pricey", margin))
    return planner, planner.next_round(0.0)


def test_after_a_round_of_less_data_the_verdicts_pick_goes_first_where_the_rates_measured_keep_it_level():
    """Two left, one goes on (η = 3). Both gained about 10 points from round 1 to round 2: at those rates they end
    1.4 points apart at the full data, within the 3 points either side that the paired comparison could not separate,
    so the verdict there would pick the cheaper one too. The cut keeps it, not the better estimate by 0.6 points."""
    planner, final = _two_left_after_round_two()
    assert final.strategies == ["cheap"] and final.final
    stop = planner.stopped["pricey"]
    assert stop.reason == "halved" and stop.leader.strategy == "cheap"
    assert "the verdict on these runs picks cheap, the cheapest of the strategies it cannot tell apart from the best " \
           "(pricey)" in stop.message
    assert "each carrying on the gain it showed from round to round (a check of their rates, not a forecast), pricey " \
           "would end 1.4 points above cheap, within the 3.0 points its paired comparison could not separate" in stop.message
    assert "0.8498" not in stop.message  # the rates' end points are no prediction: the estimates are (0.8 above)
    assert planner.summary()["stopped"][-1]["prediction"]["trend"] == pytest.approx(0.8498, abs=1e-4)


def test_a_cheaper_pick_that_learns_slower_than_its_margin_allows_does_not_go_first():
    """Round 2 measures the two 1 point apart, but the cheaper one gained 1 point from round 1 where the dearer gained
    6 (a frozen body level with a trained one on little data): carried on, the dearer ends 6 points above, beyond the
    3 the verdict could not separate, so the cut ranks by estimate and the dearer goes on. Without the verdict's
    margin, likewise."""
    for margin in (0.03, None):
        planner, final = _two_left_after_round_two(cheap=(0.68, 0.69), pricey=(0.64, 0.70), margin=margin)
        assert final.strategies == ["pricey"]
        assert planner.stopped["cheap"].reason == "halved"


def test_a_planned_comparison_keeps_the_verdicts_pick_at_the_full_datas_first_seed(
        tiny_bert_dir, sentiment_csv, tmp_path, capsys, runs_in_process, monkeypatch):
    """The runner asks the comparison's own verdict about the full data's first seed and the cut follows it: here a
    verdict that picks the strategy the cut by estimate would stop (the lower validation accuracy; of two level, the
    dearer), which then gets the other seed. (A tiny model on a few examples stays near chance, where nothing is cut:
    the test counts every round as informative.) Without the verdict the cut would keep the other one."""
    from tunelab.cli.main import main
    from tunelab.compare import planner, runner

    monkeypatch.setattr(planner, "informative", lambda *a, **k: True)
    monkeypatch.setattr(planner, "learned", lambda *a, **k: True)
    # a tiny model's run times are noise: head costs less, as on real data, so that a tie goes to head
    monkeypatch.setattr(planner, "timings_from_results", lambda results: [
        RunTiming(r.config["strategy"], 1.0, *{"head": (1.0, 0.5), "full": (100.0, 90.0)}[r.config["strategy"]])
        for r in results])
    asked, picked = [], []
    real = runner._verdict

    def verdict(runs, opts, planning=None):
        answer = real(runs, opts, planning)
        if planning is None:  # the rung's
            asked.append(sorted((r.config["strategy"], r.config["seed"]) for r in runs))
            worse = min(runs, key=lambda r: (r["metrics"]["validation"]["accuracy"], r.config["strategy"] != "full"))
            picked.append(worse.config["strategy"])
            answer = {**answer, "strategy": picked[-1]}
        return answer

    monkeypatch.setattr(runner, "_verdict", verdict)
    out = tmp_path / "planned"
    assert main(_two_seeds_planned(tiny_bert_dir, sentiment_csv, out)) == 0
    said = capsys.readouterr().out
    assert asked == [[("full", 42), ("head", 42)]]  # asked once, about the first seed's runs
    (kept,) = picked
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted({"full-s42", "head-s42", f"{kept}-s43"})
    (stop,) = json.loads((out / "compare.json").read_text())["planning"]["stopped"]
    assert stop["leader"]["strategy"] == kept and stop["strategy"] != kept
    assert f"recommended: {kept}" in said

def test_a_round_measured_on_a_single_validation_example_ranks_and_stops_nothing():
    """One validation text gives no interval (interval_from: None; the planner: unbounded), so the round is not
    informative: nothing is stopped as behind or halved on it (lora and full were stopped on a zero-width interval)."""
    import numpy as np

    from tunelab.advice.stats import ExampleResults
    from tunelab.advice.verdict import interval_from
    from tunelab.compare.planner import informative, learned

    one = ExampleResults.causal_lm(np.array([4.8]), np.array([50]))
    assert interval_from(one, [122.9], "perplexity") is None
    unbounded = [Measurement(s, 0.333, v, -math.inf, math.inf) for s, v in (("bitfit", 122.9), ("lora", 123.2), ("full", 124.4))]
    assert not informative(unbounded, "perplexity") and not any(learned(m, "perplexity") for m in unbounded)
    planner = Planner(["bitfit", "lora", "full"], rounds=(0.333, 1.0), metric="perplexity", budget_s=None)
    first = planner.next_round(now_s=0.0)
    planner.finish_round(first, unbounded)
    assert not planner.stops_ and sorted(planner.alive_) == ["bitfit", "full", "lora"]


def test_a_planned_comparison_whose_final_round_all_failed_is_not_a_recommendation(tmp_path, capsys):
    """Round 1 measured lora on a third of the data; its run on all of it failed. The comparison recommended lora from
    the screening run (no test score, no saved model) and exited 0; it now says so and exits 1."""
    from pathlib import Path

    from tunelab.cli.compare import _exit_code
    from tunelab.compare.runner import CompareResult, no_final_success, stopped_early_reasons
    from tunelab.config import TrainConfig
    from tunelab.run.record import RunRecord

    config = TrainConfig(model="m", data="d.csv", strategy="lora", out=str(tmp_path / "lora"), data_fraction=0.333).to_dict()
    screening = RunRecord.failure(config, "x")
    screening.run_info.status = "success"
    final = RunRecord.failure({**config, "data_fraction": 1.0}, "the run took longer than 1 s and was stopped")
    stops = [{"strategy": "head", "status": "failed", "round": 1, "data_fraction": 0.333, "reason": "failed", "message": "x"},
             {"strategy": "lora", "status": "failed", "round": 2, "data_fraction": 1.0, "reason": "failed", "message": "y"}]
    planning = {"stopped": stops, "strategies": {"head": {"status": "failed"}, "lora": {"status": "failed"}},
                "round_fractions": [0.333, 1.0]}
    assert no_final_success(planning)
    assert stopped_early_reasons(planning)[-1].startswith("No run of the final round (data fraction 1) succeeded (lora "
                                                          "failed there): the choice above rests on a screening run")
    result = CompareResult(out=tmp_path, results=[screening, final], recommendation={}, report={"csv": Path("r.csv")},
                           planning=planning)
    assert _exit_code(result) == 1
    assert "no run of the final round succeeded, so the recommendation rests on a screening run" in capsys.readouterr().err
    # a finalist that finished: nothing to say
    finished = {**planning, "strategies": {"head": {"status": "failed"}, "lora": {"status": "finalist"}}, "stopped": stops[:1]}
    assert not no_final_success(finished) and _exit_code(CompareResult(out=tmp_path, results=[screening], recommendation={},
                                                                       report={}, planning=finished)) == 0


@pytest.mark.parametrize("shown_worse", [{"lora": "last-n"}, None])
def test_a_strategy_cut_at_the_full_datas_first_seed_that_the_paired_verdict_shows_worse_is_not_called_not_shown_worse(
        shown_worse):
    """A user's 5-class data, 2 seeds: at the full data's first seed lora measured 0.82 [0.72, 0.92] (its own interval) and last-n 0.92,
    and the verdict's McNemar test on those runs showed lora worse (p = 0.031). The stop said 'its interval reaches
    last-n's 0.92, so it is not shown to be worse: --halving 1 or --exhaustive compares them to the end', from lora's
    own unpaired interval, sending the user to an exhaustive run the paired test had already answered."""
    planner = Planner(["last-n", "lora"], rounds=(1.0,), metric="accuracy", target=350.0, seeds=2)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("last-n", 1.0, 0.92, 0.07, 350), measure("lora", 1.0, 0.82, 0.11, 350)],
                         [RunTiming("last-n", 1.0, 12.0, 10.0), RunTiming("lora", 1.0, 23.0, 21.0)],
                         verdict="last-n", shown_worse=shown_worse)
    assert planner.next_round(0.0).strategies == ["last-n"]
    message = planner.stopped["lora"].message
    if shown_worse:
        assert "not shown to be worse" not in message and "--exhaustive" not in message
        assert message.endswith("shows it worse than last-n")
    else:
        assert message.endswith("so it is not shown to be worse: --halving 1 or --exhaustive compares them to the end")


def test_the_runner_tells_the_planner_which_strategies_the_rungs_verdict_shows_worse(
        tiny_bert_dir, sentiment_csv, tmp_path, capsys, runs_in_process, monkeypatch):
    """The runner passes the full data's first-seed verdict's 'worse' strategies to the planner, so the stop in
    compare.json says the paired comparison showed it worse."""
    from tunelab.cli.main import main
    from tunelab.compare import planner, runner

    monkeypatch.setattr(planner, "informative", lambda *a, **k: True)
    monkeypatch.setattr(planner, "learned", lambda *a, **k: True)
    real_measurements = planner.measurements_from_results

    def measurements(*args, **kwargs):  # a tiny model's runs sit level at chance: full below head, by a wide interval
        return [m if m.strategy != "full" else Measurement(m.strategy, m.fraction, m.value - 0.1, m.low - 0.3, m.high + 0.3,
                                                           m.n, m.seed_values, m.chance)
                for m in real_measurements(*args, **kwargs)]

    monkeypatch.setattr(planner, "measurements_from_results", measurements)
    real = runner._verdict

    def verdict(runs, opts, planning=None):
        answer = real(runs, opts, planning)
        if planning is None:  # the rung's: head best, full shown worse
            answer = {**answer, "strategy": "head", "ranking": [
                {"strategy": "head", "versus_best": {"reason": "best"}},
                {"strategy": "full", "versus_best": {"reason": "worse"}}]}
        return answer

    monkeypatch.setattr(runner, "_verdict", verdict)
    out = tmp_path / "planned"
    assert main(_two_seeds_planned(tiny_bert_dir, sentiment_csv, out)) == 0
    capsys.readouterr()
    (stop,) = json.loads((out / "compare.json").read_text())["planning"]["stopped"]
    assert stop["strategy"] == "full" and "shows it worse than head" in stop["message"]
    assert "not shown to be worse" not in stop["message"]

def test_the_console_counts_every_strategy_the_budget_stopped_not_only_the_interrupted_runs(tmp_path, capsys):
    """--budget-minutes 0.3 on a user's data: bitfit's run was interrupted, last-n's never started, head's round-2 run
    never started. The console said '1 run(s) not started or interrupted by the time budget': a run never started has
    no record, so only the interrupted one was counted."""
    from tunelab.cli.compare import print_result
    from tunelab.compare.executors import BUDGET_STOP
    from tunelab.compare.runner import CompareResult
    from tunelab.config import TrainConfig
    from tunelab.run.record import RunRecord

    config = TrainConfig(model="m", data="d.csv", strategy="bitfit", out=str(tmp_path / "bitfit")).to_dict()
    interrupted = RunRecord.failure(config, f"{BUDGET_STOP} (1 s into the run); tunelab compare --resume ...")
    stops = [{"strategy": s, "status": "stopped_early", "round": 1, "data_fraction": 0.333, "reason": "budget",
              "message": "not started"} for s in ("bitfit", "last-n", "head")]
    result = CompareResult(out=tmp_path, results=[interrupted], recommendation={}, report={},
                           planning={"stopped": stops, "strategies": {}, "round_fractions": [0.333, 1.0]})
    print_result(result)
    said = " ".join(capsys.readouterr().out.split())
    assert "3 strategies (bitfit, last-n, head) stopped by the time budget" in said
    assert "1 run(s) not started" not in said


def test_a_budget_that_ran_out_after_a_screening_run_finished_does_not_say_nothing_was_measured():
    """--budget-minutes 0.3 on a user's data: head's round-1 run finished (0.66), bitfit's was interrupted and last-n's
    never started, and head's round-2 run could not start. The reasons said 'No run finished within the time budget,
    so nothing was measured', which head's finished run contradicts."""
    from tunelab.compare.runner import stopped_early_reasons

    planner = Planner(["head", "bitfit", "last-n"], rounds=(1 / 3, 1.0), metric="accuracy", target=350.0, budget_s=18.0)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("head", 1 / 3, 0.66, 0.13, 117)], [RunTiming("head", 1 / 3, 2.0, 0.2)],
                         {"head": "ok", "bitfit": "budget", "last-n": "budget"},
                         {"bitfit": "stopped when the comparison's time budget ran out", "last-n": "not started"})
    assert planner.next_round(30.0) is None and planner.stopped["head"].reason == "budget"
    first = stopped_early_reasons(planner.summary())[0]
    assert "nothing was measured" not in first
    assert first.startswith("No strategy got past round 1 within the time budget: only head finished a screening run")
    # two screened: "only head, bitfit finished a screening runs there" read the console of a user's comparison
    planner = Planner(["head", "bitfit", "full"], rounds=(1 / 3, 1.0), metric="accuracy", target=350.0, budget_s=18.0,
                      eta=1)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("head", 1 / 3, 0.66, 0.13, 117), measure("bitfit", 1 / 3, 0.6, 0.13, 117)],
                         [RunTiming("head", 1 / 3, 2.0, 0.2), RunTiming("bitfit", 1 / 3, 9.0, 8.0)],
                         {"head": "ok", "bitfit": "ok", "full": "budget"}, {"full": "not started"})
    assert planner.next_round(30.0) is None
    assert stopped_early_reasons(planner.summary())[0].startswith(
        "No strategy got past round 1 within the time budget: only head and bitfit finished screening runs there")


def test_a_comparison_the_budget_stopped_after_its_screening_runs_exits_1_with_nothing_to_recommend(tmp_path, capsys):
    """head's round-1 run finished, then the budget stopped every strategy: 'no strategy to recommend', and the exit
    code was 0 (a screening run had succeeded), so a script took the comparison for a finished one."""
    from tunelab.cli.compare import _exit_code
    from tunelab.compare.executors import BUDGET_STOP
    from tunelab.compare.runner import CompareResult
    from tunelab.config import TrainConfig
    from tunelab.run.record import RunRecord

    def config(strategy):
        return TrainConfig(model="m", data="d.csv", strategy=strategy, out=str(tmp_path / strategy)).to_dict()

    screened = RunRecord.failure(config("head"), "x")
    screened.run_info.status, screened.run_info.error = "success", None
    interrupted = RunRecord.failure(config("bitfit"), f"{BUDGET_STOP} (1 s into the run)")
    stops = [{"strategy": s, "status": "stopped_early", "round": 1, "data_fraction": 1 / 3, "reason": "budget",
              "message": "not started"} for s in ("head", "bitfit")]
    planning = {"stopped": stops, "strategies": {}, "round_fractions": [1 / 3, 1.0]}
    result = CompareResult(out=tmp_path, results=[screened, interrupted], recommendation={"strategy": None},
                           report={}, planning=planning)
    assert _exit_code(result) == 1
    assert "no strategy got past its screening runs within the time budget" in capsys.readouterr().err
    finished = CompareResult(out=tmp_path, results=[screened, interrupted], recommendation={"strategy": "head"},
                             report={}, planning=planning)
    assert _exit_code(finished) == 0


def test_a_comparison_stopped_after_its_screening_runs_does_not_say_it_produced_no_results():
    """The budget stopped every strategy after head's screening run, which is in the results table; the first reason
    was still 'No runs to choose from: the comparison produced no results'."""
    from tunelab.compare.runner import CompareOptions, _verdict, stopped_early_reasons

    planner = Planner(["head", "bitfit"], rounds=(1 / 3, 1.0), metric="accuracy", target=350.0, budget_s=18.0)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("head", 1 / 3, 0.66, 0.13, 117)], [RunTiming("head", 1 / 3, 2.0, 0.2)],
                         {"head": "ok", "bitfit": "budget"}, {"bitfit": "not started"})
    assert planner.next_round(30.0) is None
    planning = planner.summary()
    recommendation = _verdict([], CompareOptions(), planning)  # no finalist: the verdict reads none of the runs
    reasons = recommendation["reasons"] + stopped_early_reasons(planning)
    assert recommendation["strategy"] is None and not any("produced no results" in r for r in reasons)
    assert reasons[0].startswith("No strategy got past round 1 within the time budget: only head finished")


def _two_seeds_planned(model, data, out) -> list[str]:
    """``tunelab compare`` of head and full in rounds with two seeds: the full data's first seed is a rung."""
    return ["compare", "--model", str(model), "--data", str(data), "--strategies", "head,full", "--epochs", "1",
            "--batch-size", "8", "--data-fractions", "1.0", "--seeds", "2", "--plan", "--no-forgetting",
            "--no-pre-recommendation", "--out", str(out)]


def test_a_lone_strategy_goes_to_the_last_round_counted_as_such(tiny_bert_dir, sentiment_csv, tmp_path, capsys,
                                                                runs_in_process):
    """With one strategy left (here from the start) the planner skips to its last rung, and the console said
    "round 1/3: head ... (the final round)": the round count is the rounds that run."""
    from tunelab.cli.main import main

    assert main(["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head",
                 "--epochs", "1", "--batch-size", "8", "--data-fractions", "0.5,1.0", "--seeds", "2", "--plan",
                 "--no-forgetting", "--no-pre-recommendation", "--out", str(tmp_path / "one")]) == 0
    said = capsys.readouterr().out
    rounds = [line for line in said.splitlines() if line.startswith("round ") and ": " in line and "[" not in line]
    assert rounds == [next(line for line in rounds if ", the final round" in line)], said
    assert rounds[0].startswith("round 1/1: head"), rounds

def test_the_runner_asks_the_verdict_after_a_round_of_less_data_and_passes_its_margin(tiny_bert_dir, sentiment_csv,
                                                                                     tmp_path, capsys, runs_in_process, monkeypatch):
    """A round of half the data before the full data: the planner gets the verdict's pick on that round's runs and
    the half-width of the pick's paired interval against the verdict's best (or 0 where the pick is the best), which
    its cut needs to keep a cheaper pick first (:meth:`Planner._keeps_up`)."""
    from tunelab.cli.main import main
    from tunelab.compare import runner

    seen = []
    real = Planner.finish_round

    def finish_round(self, rnd, *args, **kwargs):
        seen.append((rnd.screening, rnd.final, kwargs.get("verdict"), kwargs.get("verdict_margin")))
        return real(self, rnd, *args, **kwargs)

    monkeypatch.setattr(Planner, "finish_round", finish_round)
    assert main(["compare", "--model", str(tiny_bert_dir), "--data", str(sentiment_csv), "--strategies", "head,full",
                 "--epochs", "1", "--batch-size", "8", "--data-fractions", "0.25,0.5,1.0", "--plan",
                 "--no-forgetting", "--no-pre-recommendation", "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    screening = [s for s in seen if s[0]]
    assert screening, seen
    # round 1 has no earlier measurement, so no rate for the cut to use: the verdict is not asked there
    assert screening[0][2] is None and screening[0][3] is None, seen
    assert len(screening) > 1, seen
    _, _, verdict, margin = screening[1]
    assert verdict in ("head", "full")
    best, half = margin
    assert best in ("head", "full") and half >= 0.0 and (half == 0.0) == (best == verdict)
    assert runner._verdict_margin([{"strategy": "a", "versus_best": {"reason": "best"}},
                                   {"strategy": "b", "versus_best": {"gap_low": -0.01, "gap_high": 0.05}}],
                                  "b", "a") == ("a", pytest.approx(0.03))


def test_the_values_a_stop_sets_side_by_side_read_at_one_precision():
    """rotten-tomatoes, 150 validation examples: the stop printed, and the report and recommendation.json repeated,
    'its predicted validation accuracy at the full data, 0.64, is above head's 0.5933' (4 significant digits with the
    trailing zeros dropped), two values that read as rounded differently; now '0.6400 ... 0.5933'."""
    planner = Planner(["cheap", "pricey"], rounds=(1.0,), metric="accuracy", target=300.0, seeds=3)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure("cheap", 1.0, 0.59333, 0.07, 300), measure("pricey", 1.0, 0.64, 0.07, 300)],
                         [RunTiming("cheap", 1.0, 4.0, 3.0), RunTiming("pricey", 1.0, 60.0, 55.0)], verdict="cheap")
    assert planner.next_round(0.0).strategies == ["cheap"]
    assert "its validation accuracy, 0.6400, is above cheap's 0.5933, but" in planner.stopped["pricey"].message


def test_a_stop_records_as_its_leader_the_strategy_its_message_compares_it_with():
    """Three at the full data's first seed keep two (η = 1.5): the verdict's pick head (0.5933) and the best estimate
    last-n (0.64). lora's stop said 'is above head's 0.5933, but the verdict on these runs picks head' while its
    recorded leader, the report's Against cell, was 'last-n 0.640'; the leader is now head, the one the message names."""
    values = {"head": 0.59333, "last-n": 0.64, "lora": 0.62}
    seconds = {"head": 4.0, "last-n": 17.0, "lora": 60.0}
    planner = Planner(list(values), rounds=(1.0,), metric="accuracy", target=300.0, seeds=3, eta=1.5)
    rnd = planner.next_round(0.0)
    planner.finish_round(rnd, [measure(s, 1.0, v, 0.07, 300) for s, v in values.items()],
                         [RunTiming(s, 1.0, t, t - 1) for s, t in seconds.items()], verdict="head")
    assert sorted(planner.next_round(0.0).strategies) == ["head", "last-n"]
    stop = planner.stopped["lora"]
    assert "is above head's 0.5933, but the verdict on these runs picks head" in stop.message
    assert stop.leader.strategy == "head" and stop.leader.estimate == pytest.approx(0.59333)


def test_a_budget_spent_before_round_1_starts_nothing_and_says_so_with_its_numbers(tmp_path, capsys):
    """--budget-minutes 0.1 on a user's 600 rows, no cost estimates: the advice before training took 21 s of the 6 s.
    Round 1 still began (no run had a predicted time), each run said 'training head ...' and then 'not started',
    every stop read 'after round 1 (data fraction 0.111)', a round none of them ran, and the last line said
    'every run failed', when none had run."""
    from tunelab.cli.compare import _exit_code
    from tunelab.compare.runner import CompareResult
    from tunelab.report.tables import stop_note

    planner = Planner(["head", "bitfit", "full"], rounds=(1 / 9, 1 / 3, 1.0), metric="accuracy", target=420.0,
                      budget_s=6.0)
    assert planner.next_round(21.0) is None
    stop = planner.stopped["head"]
    assert stop.reason == "budget" and stop.round == 0
    assert stop.message == ("the 6 s budget had run out (21 s had passed) before its round-1 run at data fraction "
                            "0.111111 could start")
    planning = planner.summary()
    assert stop_note(planning["stopped"][0]).startswith("stopped early before its first round: the 6 s budget")
    assert stop_note(planning["stopped"][0], short=True) == "before round 1: budget"  # it read "round 0: budget"
    from tunelab.compare.runner import stopped_early_reasons
    from tunelab.report.tables import console_table

    # it read "No strategy reached the final round ...: the choice above rests on the largest fraction that was measured"
    assert stopped_early_reasons(planning)[0].startswith("No run finished within the time budget, so nothing was measured")
    assert console_table([], recommendation={"planning": planning}).title == "tunelab comparison"  # not "(data fraction 0)"
    result = CompareResult(out=tmp_path, results=[], recommendation={"strategy": None}, report={}, planning=planning)
    assert _exit_code(result) == 1
    err = capsys.readouterr().err
    assert "every run failed" not in err
    assert "no run finished within the 0.1-minute (6 s) time budget" in err and "--resume" in err
