"""The recommendation from measured runs: best metric, cheaper within tolerance, budgets, failures."""

from __future__ import annotations

import pytest

from tunelab.advice.choose import (
    crossover_from_fractions,
    crossover_statement,
    recommend_from_results,
    summarize_strategies,
)


def make_run(
    strategy: str,
    metric: float | None = 0.8,
    *,
    seed: int = 0,
    fraction: float = 1.0,
    train_time: float = 10.0,
    memory: float = 1000.0,
    share: float = 0.01,
    status: str = "success",
    error: str | None = None,
    task: str = "classification",
    n_train: int = 800,
    labels: tuple[str, ...] = ("neg", "pos"),
) -> dict:
    """A run record shaped like :mod:`tunelab.run.record` describes, with only what matters set."""
    name = "accuracy" if task == "classification" else "perplexity"
    total = 1_000_000
    failed = status != "success"
    return {
        "run_info": {
            "run_id": f"{strategy}-s{seed}-f{fraction}",
            "strategy": strategy,
            "seed": seed,
            "data_fraction": fraction,
            "status": status,
            "error": error,
            "started_at": "2025-01-01T00:00:00",
            "wall_time_s": train_time + 1.0,
        },
        "train_info": {}
        if failed
        else {
            "train_time_s": train_time,
            "eval_time_s": 1.0,
            "samples_per_s": n_train / train_time,
            "peak_memory_mb": memory,
            "memory_kind": "rss",
            "trainable_params": int(share * total),
            "total_params": total,
            "trainable_share": share,
            "epochs": [{"epoch": 1, "train_loss": 0.5, f"val_{name}": metric}],
        },
        "metrics": {} if failed else {"validation": {name: metric}, "test": {name: metric}},
        "meta_info": {
            "model": "tiny-bert",
            "task": task,
            "n_train": n_train,
            "n_validation": 100,
            "n_test": 100,
            "label_names": list(labels) if task == "classification" else [],
        },
        "config": {"strategy": strategy, "seed": seed},
        "artifact": {} if failed else {"size_mb": share * 4.0, "format": "peft"},
    }


def test_picks_the_best_when_nothing_else_is_close():
    runs = [make_run("head", 0.70, train_time=5), make_run("full", 0.85, train_time=100), make_run("lora", 0.80, train_time=40)]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "full"
    assert rec["metric"] == "accuracy"
    assert [r["strategy"] for r in rec["ranking"]] == ["full", "lora", "head"]
    assert rec["ranking"][0]["why_not"] is None
    assert "5.0 points below" in rec["ranking"][1]["why_not"]
    assert "0.850" in rec["reasons"][0] and "lora" in rec["reasons"][0]


def test_prefers_a_cheaper_strategy_within_tolerance_and_quotes_numbers():
    runs = [
        make_run("full", 0.805, train_time=95, memory=2000, share=1.0),
        make_run("lora", 0.801, train_time=41, memory=1200, share=0.009),
    ]
    # no default tolerance any more: one seed and no saved outputs give no interval, so only an
    # explicit tolerance makes a strategy "as good"
    assert recommend_from_results(runs)["strategy"] == "full"
    rec = recommend_from_results(runs, tolerance=0.01)
    assert rec["strategy"] == "lora"
    first = rec["reasons"][0]
    for text in ("0.801", "0.4 points below full", "0.805", "2.3× faster", "41 s vs 95 s", "0.9 %"):
        assert text in first, (text, first)
    assert rec["ranking"][0]["strategy"] == "full"
    assert "cheaper" in rec["ranking"][0]["why_not"]


def test_explicit_tolerance_changes_the_choice():
    runs = [make_run("full", 0.805, train_time=95), make_run("lora", 0.801, train_time=41)]
    assert recommend_from_results(runs, tolerance=0.001)["strategy"] == "full"


def test_without_saved_outputs_seeds_give_a_t_test_and_close_strategies_stay_contenders():
    # full: 0.80 and 0.86 -> mean 0.83, std ~0.042; lora at 0.80, 0.80: 3 points below, within the seed noise.
    runs = [
        make_run("full", 0.80, seed=0, train_time=100),
        make_run("full", 0.86, seed=1, train_time=100),
        make_run("lora", 0.80, seed=0, train_time=40),
        make_run("lora", 0.80, seed=1, train_time=40),
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "lora"
    assert rec["tolerance"] is None and rec["evidence"] == "seeds"
    assert rec["cannot_separate"] == ["lora", "full"]
    assert any("over seeds" in r and "no per-example outputs saved" in r for r in rec["reasons"])


def test_perplexity_lower_is_better_with_relative_tolerance():
    runs = [
        make_run("full", 10.0, task="causal-lm", train_time=100),
        make_run("lora", 10.15, task="causal-lm", train_time=30),  # 1.5 % worse: within 2 %
        make_run("head", 9.0, task="causal-lm", train_time=200, status="failed", error="boom"),
    ]
    rec = recommend_from_results(runs, tolerance=0.02)
    assert rec["metric"] == "perplexity"
    assert rec["strategy"] == "lora"
    assert "1.5 % higher than full" in rec["reasons"][0] and "within the 2.0 % tolerance" in rec["reasons"][0]
    runs[1] = make_run("lora", 10.5, task="causal-lm", train_time=30)  # 5 % worse
    assert recommend_from_results(runs, tolerance=0.02)["strategy"] == "full"


def test_respects_training_time_limit_and_memory():
    runs = [
        make_run("full", 0.90, train_time=600, memory=9000),
        make_run("lora", 0.85, train_time=100, memory=5000),
        make_run("head", 0.70, train_time=10, memory=1000),
    ]
    rec = recommend_from_results(runs, max_train_minutes=5)
    assert rec["strategy"] == "lora"
    full = next(r for r in rec["ranking"] if r["strategy"] == "full")
    assert not full["fits"] and "600 s" in full["why_not"]
    assert any("full was excluded" in r and "5-minute training-time limit" in r for r in rec["reasons"])
    assert recommend_from_results(runs, budget_minutes=5)["strategy"] == "lora"  # the older name still works
    rec = recommend_from_results(runs, max_train_minutes=5, memory_gb=2)
    assert rec["strategy"] == "head"
    # the figures are bytes / 2**20 and the limit GiB (× 1024 of them): labelled so, not MB / GB
    lora = next(r for r in rec["ranking"] if r["strategy"] == "lora")
    assert "peak memory 5,000 MiB, over the 2 GiB limit" in lora["why_not"]
    rec = recommend_from_results(runs, memory_gb=0.5)
    assert rec["strategy"] is None
    assert "No successful strategy fits" in rec["reasons"][0]
    assert "the 0.5 GiB memory limit" in rec["reasons"][0] and "with 1,000 MiB peak memory" in rec["reasons"][0]


def test_failed_runs_are_reported_with_their_error():
    runs = [
        make_run("lora", 0.8),
        make_run("ia3", status="failed", error="CUDA out of memory. Tried to allocate 2 GiB"),
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "lora"
    assert any("ia3 failed: CUDA out of memory" in r for r in rec["reasons"])
    ia3 = rec["ranking"][-1]
    assert ia3["strategy"] == "ia3" and ia3["mean"] is None and not ia3["fits"]
    assert "only strategy" in rec["reasons"][0]


def test_no_successful_run_and_no_runs():
    runs = [make_run("full", status="failed", error="OOM"), make_run("lora", status="failed", error="bad rank")]
    rec = recommend_from_results(runs)
    assert rec["strategy"] is None
    assert "No strategy finished successfully" in rec["reasons"][0]
    assert any("full failed: OOM" in r for r in rec["reasons"])
    assert any("lora failed: bad rank" in r for r in rec["reasons"])
    empty = recommend_from_results([])
    assert empty["strategy"] is None and empty["reasons"]


def test_single_run():
    rec = recommend_from_results([make_run("bitfit", 0.75, train_time=12, share=0.001)])
    assert rec["strategy"] == "bitfit"
    assert "0.750" in rec["reasons"][0] and "12 s" in rec["reasons"][0] and "0.1 %" in rec["reasons"][0]


def test_seeds_are_aggregated_at_the_largest_fraction():
    runs = [
        make_run("lora", 0.78, seed=0, train_time=40),
        make_run("lora", 0.82, seed=1, train_time=60),
        make_run("lora", 0.50, seed=0, fraction=0.25, n_train=200),
        make_run("full", 0.30, seed=0, fraction=0.25, n_train=200),
        make_run("lora", status="failed", error="nan loss", seed=2),
    ]
    (lora,) = summarize_strategies(runs)
    assert lora.n == 2 and lora.test_mean == pytest.approx(0.80)
    assert lora.test_std == pytest.approx(0.0283, abs=1e-3)
    assert lora.train_time_s == pytest.approx(50)
    assert lora.status == "success (1 failed)"
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "lora"
    assert rec["ranking"][0]["n"] == 2 and rec["ranking"][0]["mean"] == pytest.approx(0.80)
    assert any("1 of 3 runs failed" in r and "nan loss" in r for r in rec["reasons"])
    assert any("800 training examples, 2 classes, about 400 per class" in r for r in rec["reasons"])


def test_crossover_full_pays_off_with_more_data():
    runs = []
    for fraction, n, full, lora in [(0.1, 80, 0.60, 0.70), (0.5, 400, 0.78, 0.77), (1.0, 800, 0.86, 0.80)]:
        runs += [
            make_run("full", full, fraction=fraction, n_train=n),
            make_run("lora", lora, fraction=fraction, n_train=n),
            make_run("gradual", 0.99, fraction=fraction, n_train=n),  # not a frozen/PEFT strategy
        ]
    rows = crossover_from_fractions(runs)
    assert [r["n_train"] for r in rows] == [80, 400, 800]
    assert [r["full_beats"] for r in rows] == [False, True, True]
    assert [r["best_frozen_or_peft"] for r in rows] == ["lora", "lora", "lora"]
    assert rows[0]["best_strategy"] == "gradual"
    assert all(r["crossover_n_train"] == 400 for r in rows)
    statement = crossover_statement(rows)
    assert "from 400 labelled training examples" in statement and "0.780" in statement
    assert "1.0 points above it" in statement
    assert any("scored above the best frozen/PEFT strategy from 400" in r for r in recommend_from_results(runs)["reasons"])


def test_crossover_never_and_single_fraction():
    runs = [
        make_run("full", 0.70, fraction=0.5, n_train=400),
        make_run("head", 0.75, fraction=0.5, n_train=400),
        make_run("full", 0.80, fraction=1.0, n_train=800),
        make_run("head", 0.79, fraction=1.0, n_train=800),
        make_run("full", 0.76, fraction=0.25, n_train=200),
        make_run("head", 0.70, fraction=0.25, n_train=200),
    ]
    rows = crossover_from_fractions(runs)
    # full wins at 200, loses at 400, wins at 800: it pays off consistently only from 800 on.
    assert rows[0]["crossover_n_train"] == 800
    runs[2] = make_run("full", 0.78, fraction=1.0, n_train=800)
    rows = crossover_from_fractions(runs)
    assert rows[0]["crossover_n_train"] is None
    assert "did not stay above" in crossover_statement(rows)
    single = crossover_from_fractions([make_run("full", 0.8), make_run("lora", 0.7)])
    assert len(single) == 1 and single[0]["full_beats"] is True
    assert crossover_statement(single) is None
    assert crossover_from_fractions([]) == []


def test_best_is_also_cheapest_and_runner_up_is_within_tolerance():
    runs = [
        make_run("full", 12.0, task="causal-lm", seed=0, train_time=100),
        make_run("full", 12.4, task="causal-lm", seed=1, train_time=100),
        make_run("lora", 12.1, task="causal-lm", train_time=30),
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "lora"
    first = rec["reasons"][0]
    assert "reached the best validation perplexity, 12.1" in first
    assert "full (12.2), is 0.8 % higher than it, not distinguishable from it at the 5 % level" in first
    assert "3.3× faster (30 s vs 100 s)" in first
    assert "worse" not in first


def test_missing_costs_do_not_break_the_reasons():
    runs = [
        {"run_info": {"strategy": "head", "status": "success"},
         "metrics": {"validation": {"accuracy": 0.7}, "test": {"accuracy": 0.7}}},
        {"run_info": {"strategy": "full", "status": "success"},
         "metrics": {"validation": {"accuracy": 0.75}, "test": {"accuracy": 0.75}}},
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "full"
    assert "–" not in rec["reasons"][0]
    assert any("training-set size not recorded" in r for r in rec["reasons"])


def test_cost_words_say_which_way_each_cost_goes():
    from tunelab.advice.choose import _costs, format_difference, format_seconds
    from tunelab.advice.stats import Interval

    def cost(time_s, mb):
        return type("S", (), {"train_time_s": time_s, "peak_memory_mb": mb})()

    # faster but heavier: said as a trade-off, not as two savings
    assert _costs(cost(0.24, 578.0), cost(0.31, 545.0)) == (
        "1.3× faster (0.24 s vs 0.31 s), though using 1.1× more peak memory (578 MiB vs 545 MiB)"
    )
    assert _costs(cost(10.0, 500.0), cost(30.0, 900.0)) == "3.0× faster (10 s vs 30 s) and using 44 % less peak memory (500 MiB vs 900 MiB)"
    assert _costs(cost(None, 500.0), cost(30.0, 900.0)) == "using 44 % less peak memory (500 MiB vs 900 MiB)"
    # after "head trains ...": "and uses", not "and using"
    assert _costs(cost(10.0, 500.0), cost(30.0, 900.0), using="uses").endswith("and uses 44 % less peak memory (500 MiB vs 900 MiB)")
    assert format_seconds(0.24) == "0.24 s" and format_seconds(4.24) == "4.2 s"
    # a difference that rounds to zero has no sign: neither a minus one nor a plus one
    assert format_difference(Interval(0.0001, 0.0, 0.0004, 0.95, "paired bootstrap", 100), "accuracy") == "0.0 points [0.0, 0.0]"
    assert format_difference(Interval(0.004, -0.01, 0.02, 0.95, "paired bootstrap", 100), "accuracy") == "−0.4 points [−2.0, +1.0]"


def test_imbalanced_classes_are_said_when_accuracy_ranks():
    """Training classes at 85 / 15 (under half of an even share): the verdict says so and names --metric f1_macro;
    at 70 / 30, or ranked by macro-F1, it does not."""
    from tunelab.advice.choose import imbalance

    def runs(counts, metric_name="accuracy"):
        out = [make_run("head", 0.70, train_time=5), make_run("full", 0.85, train_time=100)]
        for r in out:
            r["meta_info"]["class_counts"] = counts
            if metric_name != "accuracy":
                for split in ("validation", "test"):
                    r["metrics"][split][metric_name] = r["metrics"][split]["accuracy"]
        return out

    skewed = {"neg": 680, "pos": 120}
    assert imbalance({"class_counts": skewed}) == "neg 680 (85 %), pos 120 (15 %)"
    assert imbalance({"class_counts": {"neg": 560, "pos": 240}}) is None and imbalance({}) is None
    five = {"a": 300, "b": 250, "c": 150, "d": 70, "e": 30}
    assert imbalance({"class_counts": five}) == "largest a 300 (38 %), smallest e 30 (4 %)"
    said = [r for r in recommend_from_results(runs(skewed))["reasons"] if "imbalanced" in r]
    assert said and "neg 680 (85 %), pos 120 (15 %)" in said[0] and "--metric f1_macro" in said[0]
    assert not [r for r in recommend_from_results(runs({"neg": 560, "pos": 240}))["reasons"] if "imbalanced" in r]
    assert not [r for r in recommend_from_results(runs(skewed, "f1_macro"), metric="f1_macro")["reasons"] if "imbalanced" in r]
    # the data regime gives the range and the median of imbalanced classes, not a mean that no class is near
    from tunelab.advice.choose import describe_data_regime

    regime = {"n_train": 800, "n_labels": 5, "per_class": 160.0, "class_counts": five}
    assert describe_data_regime(regime, "classification") == "800 training examples, 5 classes, 30 to 300 per class (median 150)"
    even = {"n_train": 800, "n_labels": 2, "per_class": 400.0, "class_counts": {"neg": 400, "pos": 400}}
    assert describe_data_regime(even, "classification") == "800 training examples, 2 classes, about 400 per class"


def test_a_run_records_its_training_examples_per_class(tiny_bert_dir, toy_classification_data, tmp_path):
    import tunelab.run.training
    from tunelab.config import TrainConfig

    record = tunelab.run.training.train(TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, out=str(tmp_path / "o")),
                                        data=toy_classification_data, progress=False)
    counts = record["meta_info"]["class_counts"]
    names = toy_classification_data.label_names
    assert list(counts) == names and sum(counts.values()) == len(toy_classification_data.train)
    assert counts[names[1]] == sum(toy_classification_data.train["label"])


def test_a_long_failure_is_shortened_between_words_keeping_its_end():
    """A failed run's message in the reasons: one line, its middle left out between words (it read "(a … rameters"),
    its end (what to do) whole."""
    from tunelab.advice.choose import _short

    message = ("ia3 cannot apply to this qwen3_moe model: no dense projection outside the attention writes the block's "
               "width for IA3 to rescale as the feed-forward output (a mixture of experts whose experts are fused "
               "parameters, or a router); use lora, or name the modules with --lora-target-modules")
    cut = _short(message)
    assert len(cut) <= 240 and " … " in cut
    head, end = cut.split(" … ")
    assert message.startswith(head) and message.endswith(end)
    assert f" {end}" in message and f"{head} " in message  # whole words on both sides
    assert end.endswith("name the modules with --lora-target-modules")
    assert _short("x" * 300).startswith("x" * 100)  # one long word is still cut


def test_a_bound_that_rounds_to_zero_is_printed_without_a_sign():
    """A causal LM's difference interval whose lower bound is -0.0003 (-0.03 %) printed '[+0.0, +2.1]', as if the
    difference were shown to be at least zero, while the interval reaches below it; an accuracy bound of -0.0004 (of a
    point) the same way; and the report's difference without an interval could print '−0.0 points'. A bound that rounds
    to zero at the stated precision is '0.0', the sign it has being below what the bootstrap resolves."""
    from tunelab.advice.choose import format_difference
    from tunelab.advice.stats import Interval
    from tunelab.report.writer import _versus_text

    lm = Interval(0.011, -0.0003, 0.021, 0.95, "paired bootstrap", 60)
    assert format_difference(lm, "perplexity") == "+1.1 % [0.0, +2.1]"
    assert format_difference(Interval(-0.011, -0.021, 0.0003, 0.95, "paired bootstrap", 60), "perplexity") == (
        "−1.1 % [−2.1, 0.0]")
    points = Interval(0.012, 0.000004, 0.02, 0.95, "paired bootstrap", 400)  # value - best: -1.2 [-2.0, -0.0004]
    assert format_difference(points, "accuracy") == "−1.2 points [−2.0, 0.0]"
    assert format_difference(Interval(0.004, -0.01, 0.02, 0.95, "paired bootstrap", 100), "accuracy") == (
        "−0.4 points [−2.0, +1.0]")
    assert _versus_text({"reason": "within_tolerance", "gap": 0.0004}, "accuracy") == "0.0 points (within tolerance)"
    assert _versus_text({"reason": "worse", "gap": 0.012}, "accuracy") == "−1.2 points (worse)"
    assert _versus_text({"reason": "worse", "gap": 0.012, "gap_low": -0.0003, "gap_high": 0.021},
                        "perplexity").startswith("+1.2 % [0.0, +2.1] (worse")


def test_perplexities_scored_with_and_without_the_per_text_mask_are_said_not_to_compare():
    """A soft prompt's runs score packed texts across their boundaries, the others each text alone: on 64 maintenance
    notes the verdict chose prompt-tuning (55.8) over LoRA (121.4), whose same run scored 35.7 across texts. The
    reasons say the two were not measured alike."""
    runs = [make_run("lora", 121.4, task="causal-lm", train_time=70), make_run("ia3", 192.5, task="causal-lm", train_time=65),
            make_run("prompt-tuning", 55.8, task="causal-lm", train_time=68)]
    for run, masked in zip(runs, (True, True, False)):
        run["train_info"]["document_mask"] = masked
    said = [r for r in recommend_from_results(runs)["reasons"] if "not measured alike" in r]
    assert said == ["The perplexities were not measured alike: prompt-tuning let each text attend to the texts packed "
                    "before it in a block, ia3 and lora scored each text alone (document_mask=True); a text read after "
                    "others is easier to predict, so the gap between the two is partly how they were measured, not what "
                    "they learnt: compare again with document_mask=False to score every strategy across texts."]
    for run in runs:
        run["train_info"]["document_mask"] = False
    assert not [r for r in recommend_from_results(runs)["reasons"] if "not measured alike" in r]
