"""Verdicts from per-example outputs: select on validation, report on test, pair the comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunelab.advice.choose import recommend_from_results
from tunelab.errors import ConfigError
from tunelab.run.outputs import ExampleOutputs


def record(tmp_path, strategy: str, outputs: dict[str, ExampleOutputs], *, train_time: float,
           memory: float = 1000.0, seed: int = 0, label_names: tuple[str, ...] = ("neg", "pos")) -> dict:
    """A successful run record whose per-example outputs are saved where ``config.out`` says."""
    folder = tmp_path / f"{strategy}-s{seed}"
    metrics = {}
    for split, out in outputs.items():
        out.save(folder, split)
        metrics[split] = out.metrics()
    return {
        "run_info": {"run_id": folder.name, "strategy": strategy, "seed": seed, "data_fraction": 1.0, "status": "success"},
        "train_info": {"train_time_s": train_time, "peak_memory_mb": memory, "trainable_share": 0.01},
        "metrics": metrics,
        "meta_info": {"task": "classification", "n_train": 1000, "label_names": list(label_names)},
        "config": {"strategy": strategy, "seed": seed, "out": str(folder)},
    }


def predictions(y: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """Predictions of ``y`` (two classes) right on exactly ``accuracy`` of the examples, chosen at random."""
    rng = np.random.default_rng(seed)
    wrong = rng.permutation(y.size)[: round((1 - accuracy) * y.size)]
    pred = y.copy()
    pred[wrong] = 1 - pred[wrong]
    return pred


def outputs(y: np.ndarray, pred: np.ndarray) -> ExampleOutputs:
    return ExampleOutputs(labels=y, predictions=pred, label_names=["neg", "pos"])


@pytest.fixture
def labels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"validation": rng.integers(0, 2, 2000), "test": rng.integers(0, 2, 2000)}


def test_a_strategy_best_on_test_but_not_on_validation_is_not_chosen(tmp_path, labels):
    y_val, y_test = labels["validation"], labels["test"]
    runs = [
        # "full" is clearly better on validation; "lora" is far better on test only (and cheaper)
        record(tmp_path, "full", {"validation": outputs(y_val, predictions(y_val, 0.90, 1)),
                                  "test": outputs(y_test, predictions(y_test, 0.70, 2))}, train_time=100),
        record(tmp_path, "lora", {"validation": outputs(y_val, predictions(y_val, 0.75, 3)),
                                  "test": outputs(y_test, predictions(y_test, 0.95, 4))}, train_time=10),
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "full"
    assert rec["selection_split"] == "validation" and rec["report_split"] == "test"
    assert rec["validation"]["split"] == "validation" and rec["validation"]["estimate"] == pytest.approx(0.90)
    assert rec["test"]["split"] == "test" and rec["test"]["estimate"] == pytest.approx(0.70)
    assert rec["test"]["low"] < 0.70 < rec["test"]["high"]
    lora = next(r for r in rec["ranking"] if r["strategy"] == "lora")
    assert lora["versus_best"]["reason"] == "worse" and lora["test"]["estimate"] == pytest.approx(0.95)


def test_identical_predictions_cannot_be_separated_and_the_cheaper_is_chosen(tmp_path, labels):
    y_val, y_test = labels["validation"][:60], labels["test"][:60]  # a small validation split, one seed
    same_val, same_test = predictions(y_val, 0.8, 5), predictions(y_test, 0.8, 6)
    runs = [
        record(tmp_path, "full", {"validation": outputs(y_val, same_val), "test": outputs(y_test, same_test)},
               train_time=100, memory=3000),
        record(tmp_path, "lora", {"validation": outputs(y_val, same_val), "test": outputs(y_test, same_test)},
               train_time=30, memory=1000),
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "lora" and rec["evidence"] == "examples"
    assert sorted(rec["cannot_separate"]) == ["full", "lora"]
    text = " ".join(rec["reasons"])
    assert "cannot separate lora and full (60 validation examples, one seed each)" in text
    assert "McNemar" in text
    full = next(r for r in rec["ranking"] if r["strategy"] == "full")
    # a tie goes to the cheaper strategy as "best"; the other is not distinguishable from it
    assert full["versus_best"]["reason"] == "not_distinguishable" and full["versus_best"]["p_value"] == 1.0
    assert "cheaper" in full["why_not"]


def test_a_ten_point_gap_on_two_thousand_examples_is_worse(tmp_path, labels):
    y_val, y_test = labels["validation"], labels["test"]
    runs = [
        record(tmp_path, "full", {"validation": outputs(y_val, predictions(y_val, 0.85, 7)),
                                  "test": outputs(y_test, predictions(y_test, 0.85, 8))}, train_time=100),
        record(tmp_path, "head", {"validation": outputs(y_val, predictions(y_val, 0.75, 9)),
                                  "test": outputs(y_test, predictions(y_test, 0.75, 10))}, train_time=5),
    ]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "full" and rec["cannot_separate"] == []
    head = next(r for r in rec["ranking"] if r["strategy"] == "head")
    versus = head["versus_best"]
    assert versus["reason"] == "worse" and versus["p_value"] < 0.001
    assert versus["gap"] == pytest.approx(0.10) and versus["gap_low"] > 0.07 and versus["gap_high"] < 0.13
    # a tolerance larger than the whole interval makes head as good, and it is cheaper
    tolerant = recommend_from_results(runs, tolerance=0.15)
    assert tolerant["strategy"] == "head" and "within the 15.0 points tolerance" in tolerant["reasons"][0]


def test_metric_f1_macro_chooses_by_f1(tmp_path):
    y = np.array([0] * 1800 + [1] * 200)  # imbalanced: always "neg" is 90 % accurate, macro-F1 0.47
    always_neg = np.zeros_like(y)
    balanced = y.copy()
    balanced[:250] = 1  # 250 false positives: 87.5 % accurate, but it finds the minority class
    runs = [
        record(tmp_path, "head", {"validation": outputs(y, always_neg), "test": outputs(y, always_neg)}, train_time=5),
        record(tmp_path, "lora", {"validation": outputs(y, balanced), "test": outputs(y, balanced)}, train_time=50),
    ]
    assert recommend_from_results(runs)["strategy"] == "head"
    rec = recommend_from_results(runs, metric="f1_macro")
    assert rec["strategy"] == "lora" and rec["metric"] == "f1_macro"
    assert rec["validation"]["estimate"] == pytest.approx(outputs(y, balanced).metrics()["f1_macro"])
    assert "macro F1" in rec["reasons"][0]
    with pytest.raises(ConfigError, match="metric='perplexity' does not apply to classification"):
        recommend_from_results(runs, metric="perplexity")


def test_a_macro_f1_verdict_says_when_a_class_has_only_a_few_validation_examples(tmp_path):
    """Under macro-F1 a class with 2 validation examples weighs half of the score (2 classes): one of its predictions
    moved the verdict by 25 points, and nothing said so. The reasons name the class, its count and the swing; no such
    line under accuracy, nor when every class has enough examples."""
    y = np.array([0] * 98 + [1] * 2)
    right, one_off = y.copy(), y.copy()
    one_off[-1] = 0
    runs = [record(tmp_path, "head", {"validation": outputs(y, one_off), "test": outputs(y, one_off)}, train_time=5),
            record(tmp_path, "lora", {"validation": outputs(y, right), "test": outputs(y, right)}, train_time=50)]
    said = [r for r in recommend_from_results(runs, metric="f1_macro")["reasons"] if "fewer than 5 validation" in r]
    assert len(said) == 1 and "pos (2)" in said[0] and "by about 33 points" in said[0]
    assert not [r for r in recommend_from_results(runs)["reasons"] if "fewer than 5 validation" in r]
    y = np.array([0] * 90 + [1] * 10)
    runs = [record(tmp_path, "head", {"validation": outputs(y, y), "test": outputs(y, y)}, train_time=5)]
    assert not [r for r in recommend_from_results(runs, metric="f1_macro")["reasons"] if "fewer than 5" in r]

def test_a_macro_f1_verdict_scores_every_strategy_on_the_classes_validation_holds(tmp_path):
    """Validation holds no "meh" example. lora is head except that 8 of head's wrong "pos" are "meh": no worse on any
    class there. Macro F1 over the gold or predicted classes put lora on 3 classes (meh at 0) and head on 2, so head
    won by about a third of the score and the reasons said nothing of it; now both are averaged over neg and pos, lora
    leads, and the reasons say how many classes the average is over."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    head = predictions(y, 0.85, seed=1)
    lora = head.copy()
    lora[np.flatnonzero((y == 0) & (head == 1))[:8]] = 2
    names = ("neg", "pos", "meh")
    runs = [record(tmp_path, name, {"validation": outputs(y, p), "test": outputs(y, p)}, train_time=t,
                   label_names=names) for name, p, t in (("head", head, 5), ("lora", lora, 50))]
    rec = recommend_from_results(runs, metric="f1_macro")
    assert rec["strategy"] == "lora"
    said = [r for r in rec["reasons"] if "no example of meh" in r]
    assert said == ["The validation split has no example of meh: its macro F1 averages over the 2 of 3 classes it "
                    "holds, alike for every strategy (a prediction of that class there counts only as a miss of the "
                    "true one)."]


def test_the_rare_class_swing_counts_only_the_classes_validation_holds(tmp_path):
    """Validation holds 98 neg, 2 pos and no meh: macro F1 there is over 2 classes, so one prediction of pos moves it
    by up to 33 points (it said 'each of the 3 classes' and about 17)."""
    y = np.array([0] * 98 + [1] * 2)
    right, one_off = y.copy(), y.copy()
    one_off[-1] = 0
    names = ("neg", "pos", "meh")
    runs = [record(tmp_path, s, {"validation": outputs(y, p), "test": outputs(y, p)}, train_time=t, label_names=names)
            for s, p, t in (("head", one_off, 5), ("lora", right, 50))]
    said = [r for r in recommend_from_results(runs, metric="f1_macro")["reasons"] if "fewer than 5 validation" in r]
    assert len(said) == 1 and said[0].startswith("Macro F1 gives each of the 2 classes with validation examples the "
                                                 "same weight, and 1 has fewer than 5 validation examples: pos (2).")
    assert "moves its F1 by up to 0.67 (its first hit), the validation macro F1 by about 33 points" in said[0]


def test_the_rare_class_swing_is_as_large_as_one_prediction_moves_macro_f1(tmp_path):
    """Validation holds 6 business and 3 sports, all predicted business (macro F1 0.400); one sports example
    predicted right makes it 0.679, 28 points. The reason said 'by up to about 17 points' (1/(k·n), a recall's
    step, not F1's); it now states the first hit's step of sports' F1, 2/(n+1) = 0.50, 25 points of the macro."""
    from sklearn.metrics import f1_score

    y = np.array([0] * 6 + [1] * 3)
    none, one = np.zeros_like(y), np.zeros_like(y)
    one[-1] = 1
    moved = 100 * (f1_score(y, one, average="macro") - f1_score(y, none, average="macro"))
    runs = [record(tmp_path, s, {"validation": outputs(y, p), "test": outputs(y, p)}, train_time=t,
                   label_names=("business", "sports"))
            for s, p, t in (("head", none, 5), ("lora", one, 50))]
    said = [r for r in recommend_from_results(runs, metric="f1_macro")["reasons"] if "fewer than 5 validation" in r]
    stated = float(said[0].split("validation macro F1 by about ")[1].split(" points")[0])
    assert "sports (3)" in said[0] and "moves its F1 by up to 0.50" in said[0]
    assert stated == 25 and moved == pytest.approx(27.9, abs=0.1) and moved - stated < 5


def test_a_kept_strategy_whose_unadjusted_interval_excludes_zero_is_explained():
    """The interval is the paired bootstrap's, unadjusted; Holm's adjustment (or McNemar's test) decides. When
    they disagree, the reason says so instead of printing an interval that excludes zero beside "not
    distinguishable" without a word."""
    from tunelab.advice.choose import _Ask, _kept_because
    from tunelab.advice.stats import Interval
    from tunelab.advice.verdict import Comparison, Versus

    ask = _Ask("classification", "accuracy", 0.05, None)
    gap = Interval(0.034, 0.006, 0.062, 0.95, "paired percentile bootstrap", 486)
    versus = {"lora": Versus("lora", 0.78, "best"), "last-n": Versus("last-n", 0.746, "not_distinguishable", gap,
                                                                      0.058, 0.084, 0.034, p_raw=0.028),
              "bitfit": Versus("bitfit", 0.70, "worse", gap, 0.1, 0.001, 0.08, p_raw=0.0005),
              "head": Versus("head", 0.69, "worse", gap, 0.1, 0.001, 0.09, p_raw=0.0004)}
    comparison = Comparison("accuracy", "validation", "lora", 0.05, None, "examples", "McNemar mid-p, Holm-adjusted",
                            486, 1, versus)
    assert versus["last-n"].interval_disagrees
    text = _kept_because(versus["last-n"], comparison, ask)
    assert "unadjusted p = 0.028" in text and "over the 6 pairs of the 4 strategies" in text
    # McNemar keeps it even before the adjustment: the test, not the interval, decides
    mcnemar_only = Versus("last-n", 0.746, "not_distinguishable", gap, 0.058, 0.09, 0.034, p_raw=0.07)
    assert "McNemar mid-p decides" in _kept_because(mcnemar_only, comparison, ask)
    # an interval that contains zero needs no note
    plain = Versus("last-n", 0.746, "not_distinguishable", Interval(0.02, -0.01, 0.05, 0.95, "", 486), 0.04, 0.3, 0.02,
                   p_raw=0.2)
    assert not plain.interval_disagrees and _kept_because(plain, comparison, ask).endswith("p = 0.30)")


def test_a_contender_kept_for_want_of_evidence_beyond_the_tolerance_is_said_so(tmp_path, labels):
    """30 validation examples cannot show a 7-point gap; with --tolerance 0.02 the cheaper strategy is still kept (the
    rule: not distinguishable, or within the tolerance), and the reason says its estimate is beyond the tolerance."""
    y_val, y_test = labels["validation"][:30], labels["test"][:60]
    runs = [
        record(tmp_path, "full", {"validation": outputs(y_val, predictions(y_val, 0.8, 11)),
                                  "test": outputs(y_test, predictions(y_test, 0.8, 12))}, train_time=100),
        record(tmp_path, "head", {"validation": outputs(y_val, predictions(y_val, 0.73, 13)),
                                  "test": outputs(y_test, predictions(y_test, 0.73, 14))}, train_time=5),
    ]
    rec = recommend_from_results(runs, tolerance=0.02)
    head = next(r for r in rec["ranking"] if r["strategy"] == "head")
    assert rec["strategy"] == "head" and head["versus_best"]["reason"] == "not_distinguishable"
    assert "more than the 2.0 points tolerance: these examples cannot show the gap" in rec["reasons"][0]
    assert "more than the" not in " ".join(recommend_from_results(runs)["reasons"])  # no tolerance stated: nothing to say


def _unbalanced_60() -> np.ndarray:
    """60 validation labels, 36 of class 0: always predicting class 0 scores 0.600."""
    return np.random.default_rng(11).permutation(np.array([0] * 36 + [1] * 24))


def _moved(y: np.ndarray, pred: np.ndarray, worse: int, better: int) -> np.ndarray:
    """``pred`` with ``worse`` of its right answers made wrong and ``better`` of its wrong ones made right."""
    out = pred.copy()
    right, wrong = np.flatnonzero(pred == y), np.flatnonzero(pred != y)
    out[right[:worse]] = 1 - y[right[:worse]]
    out[wrong[:better]] = y[wrong[:better]]
    return out


def test_a_contender_not_shown_to_beat_the_majority_class_is_passed_over(tmp_path):
    y = _unbalanced_60()
    full = predictions(y, 47 / 60, 12)  # 0.783: its interval is clear of 0.600
    lora = _moved(y, full, worse=3, better=2)  # 0.767, clear of it too
    head = _moved(y, full, worse=10, better=5)  # 0.700: not separable from full (McNemar 10 against 5), but
    # its interval reaches 0.600
    runs = [record(tmp_path, name, {"validation": outputs(y, pred), "test": outputs(y, pred)}, train_time=cost)
            for name, pred, cost in (("full", full, 100), ("lora", lora, 10), ("head", head, 1))]
    rec = recommend_from_results(runs)
    rows = {r["strategy"]: r for r in rec["ranking"]}
    assert rows["head"]["versus_best"]["p_value"] >= 0.05  # the paired test alone would keep it, and it is cheapest
    assert rows["head"]["versus_best"]["reason"] == "at_chance" and rows["head"]["validation"]["low"] < 0.6
    assert rec["strategy"] == "lora" and "head" not in rec["contenders"]
    assert rec["chance"] == {"split": "validation", "value": pytest.approx(0.6), "learned": True, "reference": "majority"}
    text = " ".join(rec["reasons"])
    assert ("head is cheaper and not shown to be worse than the best, but not shown to do better than always predicting "
            "the most frequent class, which scores 0.600 validation accuracy on the same 60 examples") in text
    assert "not shown to do better than always predicting the most frequent class" in rows["head"]["why_not"]


def test_when_no_strategy_beats_the_majority_class_the_recommendation_says_so(tmp_path):
    y = _unbalanced_60()
    constant = np.zeros_like(y)  # every strategy predicts the majority class, as an untrained head does
    runs = [record(tmp_path, name, {"validation": outputs(y, constant), "test": outputs(y, constant)}, train_time=cost)
            for name, cost in (("full", 100), ("head", 1))]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "head" and rec["chance"]["learned"] is False
    assert "No strategy is shown to do better than always predicting the most frequent class" in rec["reasons"][1]
    assert "has not measured learning" in rec["reasons"][1]
    # one strategy that learned: no warning
    learned = recommend_from_results([runs[0], record(tmp_path, "lora", {"validation": outputs(y, y), "test": outputs(y, y)},
                                                      train_time=10)])
    assert learned["chance"]["learned"] is True and not any("No strategy is shown" in r for r in learned["reasons"])



def test_a_lone_strategy_that_learned_nothing_is_said_so(tmp_path):
    """One strategy left (the rounds stopped the others, or only one was compared): nothing to compare it with, but
    whether it beat the majority class is still measured."""
    y = _unbalanced_60()
    rec = recommend_from_results([record(tmp_path, "lora", {"validation": outputs(y, np.zeros_like(y)),
                                                            "test": outputs(y, np.zeros_like(y))}, train_time=10)])
    assert rec["strategy"] == "lora" and rec["chance"]["learned"] is False
    assert "lora is not shown to do better than always predicting the most frequent class" in rec["reasons"][1]


def test_a_choice_the_data_cannot_separate_says_how_many_examples_would(tmp_path, labels):
    """The validation size stated for separating the chosen strategy from the best holds on known data: the same
    examples repeated to that size separate them (the gap is then shown); the 100 examples, a quarter of it, do not."""
    y_val, y_test = labels["validation"][:100], labels["test"][:100]
    full_val, head_val = predictions(y_val, 0.80, 11), predictions(y_val, 0.72, 12)
    test = {"test": outputs(y_test, predictions(y_test, 0.8, 13))}

    def runs(times: int, folder: str) -> list[dict]:
        tile = lambda a: np.tile(a, times)  # noqa: E731 - the same examples, ``times`` over
        return [record(tmp_path / folder, "full", {"validation": outputs(tile(y_val), tile(full_val)), **test},
                       train_time=100),
                record(tmp_path / folder, "head", {"validation": outputs(tile(y_val), tile(head_val)), **test},
                       train_time=5)]

    rec = recommend_from_results(runs(1, "once"))
    assert rec["strategy"] == "head" and sorted(rec["cannot_separate"]) == ["full", "head"]
    needed = rec["examples_to_separate"]
    assert 100 < needed < 2000
    reason = next(r for r in rec["reasons"] if r.startswith("The data cannot separate"))
    assert f"about {needed:,} validation examples" in reason and "head's to full (8.0 points) 80 % of the time" in reason
    assert recommend_from_results(runs(math.ceil(needed / 100), "enough"))["strategy"] == "full"  # the gap is shown
    # the best chosen, or nothing left to separate: no number
    assert recommend_from_results(runs(1, "once")[:1])["examples_to_separate"] is None


def _lm(per_token_loss: np.ndarray, tokens: np.ndarray) -> ExampleOutputs:
    return ExampleOutputs(loss_sums=per_token_loss * tokens, token_counts=tokens, texts=np.arange(tokens.size))


def _lm_record(tmp_path, strategy: str, loss: np.ndarray, tokens: np.ndarray, as_loaded: np.ndarray | None,
               train_time: float) -> dict:
    from tunelab.run.outputs import AS_LOADED

    run = record(tmp_path, strategy, {"validation": _lm(loss, tokens), "test": _lm(loss, tokens)}, train_time=train_time)
    run["meta_info"] = {"task": "causal-lm", "n_train": 400}
    if as_loaded is not None:
        _lm(as_loaded, tokens).save(run["config"]["out"], AS_LOADED)
    return run


def test_a_causal_lm_adaptation_must_be_shown_to_beat_the_model_as_loaded(tmp_path):
    """A causal LM's reference is the model before any adaptation, measured by the runs on the same validation texts
    (for a classifier it is the majority class). Adaptations that do not move the perplexity off it are said to have
    shown nothing, and a cheaper strategy not shown to improve on it is passed over; one that did learn is chosen."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(20, 200, 60).astype(float)
    base = 4.0 + rng.normal(0, 0.3, 60)  # per-token loss of the model as loaded: perplexity about 55
    same = base + rng.normal(0, 0.05, 60)
    runs = [_lm_record(tmp_path / "flat", name, same + shift, tokens, base, cost)
            for name, shift, cost in (("full", -0.01, 100), ("lora", 0.0, 10))]
    rec = recommend_from_results(runs)
    assert rec["metric"] == "perplexity" and rec["chance"]["reference"] == "as-loaded" and rec["chance"]["learned"] is False
    assert rec["chance"]["value"] == pytest.approx(np.exp((base * tokens).sum() / tokens.sum()))
    warning = next(r for r in rec["reasons"] if r.startswith("No strategy is shown"))
    assert "better than the model as loaded, before any adaptation, which scores" in warning
    assert "validation perplexity on the same 60 texts" in warning and "No adaptation has been shown to help" in warning
    # full learned (a quarter of a nat a token), lora did not: lora, cheaper and close on a noisy paired test, is no contender
    learned = [_lm_record(tmp_path / "learned", "full", base - 0.25 + rng.normal(0, 0.6, 60), tokens, base, 100),
               _lm_record(tmp_path / "learned", "lora", same, tokens, base, 10)]
    rec = recommend_from_results(learned)
    assert rec["chance"]["learned"] is True and not any(r.startswith("No strategy is shown") for r in rec["reasons"])
    rows = {r["strategy"]: r for r in rec["ranking"]}
    if rows["lora"]["versus_best"]["reason"] != "worse":  # kept by the paired test alone: passed over as not learned
        assert rows["lora"]["versus_best"]["reason"] == "at_chance" and rec["strategy"] == "full"
    assert rec["strategy"] == "full"
    assert set(rec["chance"]["paired_gaps"]) == {"full", "lora"} and rec["chance"]["paired_gaps"]["full"]["high"] < 0
    # no run measured the model as loaded (older runs, prompt tuning alone): no reference, no warning
    older = [_lm_record(tmp_path / "older", name, same, tokens, None, cost) for name, cost in (("full", 100), ("lora", 10))]
    assert recommend_from_results(older).get("chance") is None, recommend_from_results(older).get("chance")


def test_a_causal_lms_verdict_counts_its_units_as_texts(tmp_path):
    """A causal LM's verdict units are texts (each its tokens summed), and the chance line said '4 texts', but the
    reasons beside it said 'cannot separate lora and full (60 validation examples, one seed each)', 'paired on the same
    60 validation examples' and 'about N validation examples': every count of them now says texts."""
    rng = np.random.default_rng(2)
    tokens = rng.integers(20, 200, 60).astype(float)
    base = 4.0 + rng.normal(0, 0.3, 60)
    runs = [_lm_record(tmp_path, name, base - 0.3 + shift + rng.normal(0, 0.05, 60), tokens, base, cost)
            for name, shift, cost in (("full", -0.01, 100), ("lora", 0.0, 10))]
    rec = recommend_from_results(runs)
    text = " ".join(rec["reasons"])
    assert "60 validation texts, one seed each" in text and "paired on the same 60 validation texts" in text
    assert "validation example" not in text
    # and the report's results caption: its intervals resample texts, not 'the evaluation examples'
    from tunelab.report.writer import write_report

    md = write_report(tmp_path / "report", runs, recommendation=rec)["md"].read_text(encoding="utf-8")
    assert "from a bootstrap over the evaluation texts (each its tokens' losses summed)" in md


def test_a_small_steady_gain_over_the_model_as_loaded_is_shown_pair_by_pair(tmp_path):
    """The model as loaded and the adapted one are measured on the same texts, so they are compared text by text: a
    gain of 1 % of the loss on every text is shown although the texts' own spread (hard and easy ones) makes the
    adapted model's interval reach the reference's perplexity. A gain that is not steady is not shown."""
    from tunelab.advice.stats import ExampleResults, bootstrap_interval

    rng = np.random.default_rng(1)
    tokens = rng.integers(20, 200, 80).astype(float)
    base = rng.uniform(2.0, 6.0, 80)  # hard and easy texts
    steady = base * 0.99
    alone = bootstrap_interval(ExampleResults.causal_lm(steady, tokens), "perplexity")
    reference = float(np.exp((base * tokens).sum() / tokens.sum()))
    assert alone.low < reference < alone.high  # the unpaired check sees nothing
    rec = recommend_from_results([_lm_record(tmp_path / "steady", "lora", steady, tokens, base, 10)])
    assert rec["chance"]["learned"] is True and rec["strategy"] == "lora"
    gap = rec["chance"]["paired_gaps"]["lora"]
    assert gap["estimate"] == pytest.approx(np.exp((steady * tokens).sum() / tokens.sum()) / reference - 1)
    assert gap["high"] < 0
    noisy = base * 0.99 + rng.normal(0, 0.5, 80)  # the same mean gain, text by text all over the place
    rec = recommend_from_results([_lm_record(tmp_path / "noisy", "lora", noisy, tokens, base, 10)])
    assert rec["chance"]["learned"] is False and rec["chance"]["paired_gaps"]["lora"]["high"] > 0
    warning = next(r for r in rec["reasons"] if r.startswith("lora is not shown"))
    assert "it differs from it by" in warning and "text by text (95 % paired interval), which reaches no change" in warning


def test_a_strategy_stopped_at_the_full_data_keeps_its_numbers_with_their_intervals(tmp_path, labels):
    """A strategy a planned comparison stopped after the full data's first seed is not ranked by the verdict, and its
    row in the report's table showed its validation and test values bare, though its outputs were saved: the table
    gives it its own intervals, computed as the verdict computes every other's."""
    from tunelab.report.tables import results_table

    y_val, y_test = labels["validation"], labels["test"]
    lora = record(tmp_path, "lora", {"validation": outputs(y_val, predictions(y_val, 0.75, 1)),
                                     "test": outputs(y_test, predictions(y_test, 0.74, 2))}, train_time=10)
    stop = {"strategy": "lora", "status": "stopped_early", "round": 2, "data_fraction": 1.0, "reason": "halved",
            "message": "after round 2 ..."}
    rows = {r["strategy"]: r for r in results_table([lora], recommendation={
        "metric": "accuracy", "ranking": [], "alpha": 0.05, "planning": {"stopped": [stop]}})}
    row = rows["lora"]
    assert row["status"] == "stopped early (1 seed)"
    for split, value in (("validation", 0.75), ("test", 0.74)):
        span = row[split]
        assert span["split"] == split and span["estimate"] == pytest.approx(value)
        assert span["low"] < value < span["high"] and span["high"] - span["low"] < 0.06 and span["level"] == 0.95


def test_no_example_count_is_promised_when_the_seeds_spread_is_what_hides_the_gap(tmp_path, labels):
    """Three seeds of full at 0.70 / 0.80 / 0.90: more examples scored at these seeds shrink the examples' noise, not
    the seeds'. The examples needed used to be the paired interval scaled as 1/sqrt(n), as if all of it were the
    examples' (simulated with 3 seeds and a 3-point gap: 33 % power at the size stated for 80 %)."""
    from tunelab.advice.stats import Interval
    from tunelab.advice.verdict import Versus, examples_to_separate

    y_val, y_test = labels["validation"][:300], labels["test"][:300]
    test = {"test": outputs(y_test, predictions(y_test, 0.8, 13))}
    runs = [record(tmp_path, "full", {"validation": outputs(y_val, predictions(y_val, acc, 20 + s)), **test},
                   train_time=100, seed=s) for s, acc in enumerate((0.70, 0.80, 0.90))]
    runs += [record(tmp_path, "head", {"validation": outputs(y_val, predictions(y_val, acc, 30 + s)), **test},
                    train_time=5, seed=s) for s, acc in enumerate((0.76, 0.74, 0.75))]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "head" and sorted(rec["cannot_separate"]) == ["full", "head"]
    assert rec["examples_to_separate"] is None
    reason = next(r for r in rec["reasons"] if r.startswith("The data cannot separate"))
    assert "(300 validation examples, 3 seeds)" in reason and "More seeds would be needed" in reason
    assert "the spread between the seeds of head and full alone is too wide to show the gap between them" in reason
    # the arithmetic: a 5-point gap needs a standard error of 0.05 / 2.80 = 0.018; seeds alone of sqrt(0.0004) = 0.02
    # leave no room for any number of examples
    gap = Interval(0.05, -0.03, 0.13, 0.95, "paired percentile bootstrap", 300, 3)
    versus = Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05)
    assert examples_to_separate(versus, 300, 0.05) == 1570  # all of the variance from the examples: scales as 1/n
    assert examples_to_separate(Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05,
                                       seed_variance=0.0004), 300, 0.05) is None
    # half of that: the normal quantiles left room for 3,711 examples, but the test there is Welch's t on about the
    # seeds' 2 degrees of freedom (3 seeds, no df given: the fewest), whose power stays below 0.8 at any number
    half = Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05, seed_variance=0.0002)
    assert examples_to_separate(half, 300, 0.05) is None
    assert _welch_power(3711, 300, (0.08 / 1.959964) ** 2 - 0.0002, 0.0002, 2, 0.05) < 0.7  # 0.63


def _welch_power(m: int, n: int, examples: float, seeds: float, seeds_df: float, gap: float, draws: int = 40_000,
                 own: float = 0.0) -> float:
    """Monte Carlo power of the verdict's test with several seeds at ``m`` examples: the gap drawn about ``gap`` with
    variance ``examples * n / m + seeds`` (of which ``own``, the seeds' own example noise, shrinks as ``n / m`` too); the
    seeds' part estimated on ``seeds_df`` (a scaled chi-square); Welch's t on the Satterthwaite degrees of freedom of
    the estimate, two-sided at 0.05 (stats._gap_p)."""
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    part = examples * n / m
    seeds = seeds - own + own * n / m
    measured = gap + rng.standard_normal(draws) * np.sqrt(part + seeds)
    spread = seeds * rng.chisquare(seeds_df, draws) / seeds_df
    nu = (part + spread) ** 2 * seeds_df / spread**2
    return float(np.mean(np.abs(measured) / np.sqrt(part + spread) > sps.t.ppf(0.975, nu)))


def test_examples_to_separate_sizes_by_the_verdicts_own_t_test():
    """With several seeds the verdict tests by Welch's t on the Satterthwaite degrees of freedom, and those fall
    towards the seeds' own as more examples shrink their part. The normal quantiles (z(0.975) + z(0.8)) asked for 535
    examples here (examples' part 0.0003 at 300, seeds' 0.00015 on 4 df, a 5-point gap), at which the test shows the
    gap 75 % of the time; the noncentral t of the test asks for 733: 79 %."""
    from tunelab.advice.stats import Interval
    from tunelab.advice.verdict import Versus, examples_to_separate, seeds_hide_gap

    gap = Interval(0.05, -0.03, 0.13, 0.95, "paired percentile bootstrap", 300, 3)
    versus = Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05, seed_variance=0.00015,
                    examples_variance=0.0003, seed_df=4)
    assert examples_to_separate(versus, 300, 0.05) == 733
    assert 0.77 < _welch_power(733, 300, 0.0003, 0.00015, 4, 0.05) < 0.83
    assert _welch_power(535, 300, 0.0003, 0.00015, 4, 0.05) < 0.76
    # the same parts on 2 degrees of freedom (the seeds' own with 3 seeds): the test never reaches 0.8, and its power
    # falls again as the examples' part vanishes, the seeds' t(2) left alone
    hidden = Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05, seed_variance=0.0002,
                    examples_variance=0.0003, seed_df=2)
    assert examples_to_separate(hidden, 300, 0.05) is None and seeds_hide_gap(hidden, 0.05)
    assert max(_welch_power(m, 300, 0.0003, 0.0002, 2, 0.05) for m in (800, 1500, 3711, 10**6)) < 0.7
    # the verdict hands the seeds' degrees of freedom on: two strategies of 3 seeds, between 2 and 4
    from tunelab.advice.stats import ExampleResults, indistinguishable_from_best

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    runs = {name: ExampleResults.classification(y, np.stack([np.where(rng.random(300) < acc + 0.03 * s, y, 1 - y)
                                                             for s in (-1, 0, 1)])) for name, acc in (("a", 0.8), ("b", 0.76))}
    v = indistinguishable_from_best(runs, "accuracy", n_boot=500).verdict("b")
    assert v.seeds_variance > 0 and 2.0 <= v.seeds_df <= 4.0 and 0 < v.seeds_examples_part <= v.seeds_variance


def test_the_seeds_own_example_noise_shrinks_with_more_examples():
    """Seeds differ by their own example noise as well as by a shift: on a finite set each errs on different examples.
    That part of the seeds' variance shrinks as 1/n, and held fixed it said "more seeds would be needed" where more
    examples would do: all 0.0002 of it own noise, the test shows the gap at 556 examples 80 % of the time."""
    from tunelab.advice.stats import ExampleResults, Interval, seed_variance, seeds_own_example_noise
    from tunelab.advice.verdict import Versus, examples_to_separate

    gap = Interval(0.05, -0.03, 0.13, 0.95, "paired percentile bootstrap", 300, 3)
    parts = dict(point_gap=0.05, seed_variance=0.0002, examples_variance=0.0003, seed_df=2)
    assert examples_to_separate(Versus("head", 0.75, "not_distinguishable", gap, **parts), 300, 0.05) is None
    own = Versus("head", 0.75, "not_distinguishable", gap, **parts, seed_examples_variance=0.0002)
    assert examples_to_separate(own, 300, 0.05) == 556
    assert 0.77 < _welch_power(556, 300, 0.0003, 0.0002, 2, 0.05, own=0.0002) < 0.83
    # the estimate: three seeds that differ by example noise alone (own noise is all of their variance), then seeds
    # 5 points apart as well (own noise a quarter of it); 30 sets of 300 examples each
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    for shift, share in ((0.0, (0.9, 1.1)), (0.05, (0.15, 0.35))):
        sets = [ExampleResults.classification(y, np.stack([np.where(rng.random(300) < 0.75 + shift * (i - 1), y, 1 - y)
                                                           for i in range(3)])) for _ in range(30)]
        ratio = (np.mean([seeds_own_example_noise(r, "accuracy") for r in sets])
                 / np.mean([seed_variance(r, "accuracy")[0] for r in sets]))
        assert share[0] < ratio < share[1]


def test_examples_to_separate_uses_the_two_parts_of_the_variance_not_the_t_widened_width():
    """The paired interval's width has Student's t on the seeds folded in; read back as a variance (before) it asked
    for too many examples. With the parts (examples' 0.0003 at 300, seeds' 0.0001 on 4 df) the number is the same
    whatever the interval's width."""
    from tunelab.advice.stats import ExampleResults, Interval, indistinguishable_from_best
    from tunelab.advice.verdict import Versus, examples_to_separate

    for width in (0.16, 0.30):
        gap = Interval(0.05, 0.05 - width / 2, 0.05 + width / 2, 0.95, "paired percentile bootstrap", 300, 3)
        assert examples_to_separate(Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05,
                                           seed_variance=0.0001, examples_variance=0.0003, seed_df=4), 300, 0.05) == 447
    # one seed: the examples' variance is the whole, as the width said before the seeds got t (1570 in the test above)
    gap = Interval(0.05, -0.03, 0.13, 0.95, "paired percentile bootstrap", 300, 1)
    assert examples_to_separate(Versus("head", 0.75, "not_distinguishable", gap, point_gap=0.05,
                                       examples_variance=(0.08 / 1.959964) ** 2), 300, 0.05) == 1570
    # the verdict hands both parts on: one seed, none from the seeds and the examples' is the paired replicates'
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    full, head = (np.where(rng.random(300) < acc, y, 1 - y) for acc in (0.80, 0.76))
    v = indistinguishable_from_best({"full": ExampleResults.classification(y, full),
                                     "head": ExampleResults.classification(y, head)}, "accuracy",
                                    n_boot=2000).verdict("head")
    assert v.seeds_variance == 0.0 and v.examples_variance == pytest.approx((v.gap.width / 2 / 1.96) ** 2, rel=0.15)
    assert v.seeds_df == math.inf


def test_causal_lm_runs_saved_before_per_text_sums_pair_with_newer_ones_by_the_text_each_block_starts_in(tmp_path):
    """A run saved before each text's own loss was kept (its blocks and the text each starts in) beside a newer one
    (per-text sums, and the validation split's last partial block now scored: one text more) could not be paired:
    the verdict fell back to the seeds, with one seed to no test at all. Both are now read by the unit they share,
    the text each block starts in, on the texts both scored alike, and the reasons say so."""
    from types import SimpleNamespace

    from tunelab.advice.verdict import compare_with_best, example_results

    rng = np.random.default_rng(3)
    tokens = rng.integers(20, 200, 61).astype(float)
    base = 4.0 + rng.normal(0, 0.3, 61)

    def blocks(loss: np.ndarray, n: int, own: bool) -> ExampleOutputs:
        out = ExampleOutputs(loss_sums=loss[:n] * tokens[:n], token_counts=tokens[:n], texts=np.arange(n))
        if own:  # each text's own tokens: the first 5 of each block belong to the text before it
            moved = np.r_[tokens[:n] - 5, 0] + np.r_[0, np.full(n, 5.0)]
            out.text_ids, out.text_token_counts = np.arange(n + 1), moved
            out.text_loss_sums = moved * np.r_[loss[:n], loss[n - 1]]
        return out

    runs = []
    for name, loss, n, own, cost in (("full", base - 0.3, 61, True, 100), ("lora", base, 60, False, 10)):
        run = record(tmp_path, name, {"validation": blocks(loss, n, own), "test": blocks(loss, n, own)}, train_time=cost)
        run["meta_info"] = {"task": "causal-lm", "n_train": 400}
        runs.append(run)
    rec = recommend_from_results(runs)
    assert rec["evidence"] == "examples" and rec["strategy"] == "full"
    method = next(r for r in rec["reasons"] if r.startswith("Chosen on the validation split"))
    assert "paired on the same 60 validation texts" in method
    assert "1 of the 2 runs' outputs were saved before each text's own loss was kept" in method
    assert "paired on the 60 of 61 texts every run scored alike" in method

    # one strategy whose seeds were saved either side of the change: its interval resamples the same 60 texts
    seeds = SimpleNamespace(strategy="lora", runs=[SimpleNamespace(config=r["config"]) for r in runs],
                            values=lambda split: [50.0, 40.0])
    both = example_results(seeds, "validation")
    assert both is not None and both.n_examples == 60 and both.n_seeds == 2
    assert compare_with_best([seeds], "perplexity").evidence == "examples"


def test_a_run_recorded_under_the_old_macro_f1_is_stated_by_its_saved_outputs(tmp_path):
    """A run recorded before macro F1 averaged the split's gold classes: its metrics.json holds scikit-learn's default
    (over the gold or predicted classes, "meh" at 0 though validation holds none) while its outputs give today's. The
    table, the ranking and results.csv showed the old value beside the interval of the new one; now every number is
    the recomputed one, the reasons say which recorded value changed, and accuracy is as recorded."""
    import csv
    import json

    from sklearn.metrics import f1_score

    from tunelab.advice.choose import summarize_strategies
    from tunelab.report import write_results_csv

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    pred = predictions(y, 0.85, seed=1)
    pred[np.flatnonzero((y == 0) & (pred == 1))[:8]] = 2  # "meh": no validation example is one
    names = ("neg", "pos", "meh")
    run = record(tmp_path, "lora", {"validation": outputs(y, pred), "test": outputs(y, pred)}, train_time=5,
                 label_names=names)
    today = run["metrics"]["validation"]["f1_macro"]
    old = float(f1_score(y, pred, average="macro"))  # what metrics.json recorded before session 43
    assert old < today - 0.2
    for split in ("validation", "test"):
        run["metrics"][split]["f1_macro"] = old
    (tmp_path / "lora-s0" / "metrics.json").write_text(json.dumps(run))

    (summary,) = summarize_strategies([run], metric="f1_macro")
    assert summary.val_mean == pytest.approx(today) and summary.test_mean == pytest.approx(today)
    rec = recommend_from_results([run], metric="f1_macro")
    (row,) = rec["ranking"]
    assert row["mean"] == pytest.approx(row["validation"]["estimate"]) and row["mean"] == pytest.approx(today)
    assert row["test_mean"] == pytest.approx(today)
    said = [r for r in rec["reasons"] if r.startswith("Recomputed from the runs' saved outputs")]
    assert len(said) == 1 and f"lora-s0 validation {old:.3f} -> {today:.3f}" in said[0], rec["reasons"]

    path = write_results_csv(tmp_path / "results.csv", [run])
    with open(path, newline="") as handle:
        (flat,) = list(csv.DictReader(handle))
    assert float(flat["metrics.validation.f1_macro"]) == pytest.approx(today)
    assert float(flat["metrics.recorded.validation.f1_macro"]) == pytest.approx(old)
    assert float(flat["metrics.validation.accuracy"]) == run["metrics"]["validation"]["accuracy"]  # exactly as recorded
    assert not [r for r in recommend_from_results([run])["reasons"] if r.startswith("Recomputed")]  # accuracy: as recorded


def test_a_random_init_lms_float32_perplexity_is_not_said_to_be_recorded_under_another_definition(tmp_path):
    """A randomly initialised causal LM (vocabulary 50,000, perplexity about 48,000): its metrics.json perplexity is
    exp of a loss summed in float32, one float32 step of the loss off the float64 sum of its saved outputs (10.775324
    against 10.775323 nats: 1.0e-6 of the perplexity). A fresh run's reasons said 'Recomputed ... (bitfit validation
    47,826.0 -> 47,825.9) ... recorded before the definition changed' and showed metrics.json's value beside the
    table's. Perplexity is compared on the loss it is the exponential of: a float32 rounding of the loss is the same
    measurement; a real change of definition (a packing tail dropped: 1e-4 of the loss) is still said."""
    import json

    from tunelab.advice.verdict import restated
    from tunelab.report import write_results_csv
    from tunelab.run.record import as_record

    rng = np.random.default_rng(0)
    tokens = rng.integers(20, 40, 60).astype(float)
    run = _lm_record(tmp_path, "bitfit", 10.775 + rng.normal(0, 0.01, 60), tokens, None, 5)
    loss = run["metrics"]["validation"]["loss"]
    assert math.exp(loss) > 40_000
    folder = tmp_path / "bitfit-s0"
    for step, said in ((9.43e-8, False), (1e-4, True)):  # float32's rounding of the loss; a changed definition
        for split in ("validation", "test"):
            run["metrics"][split]["perplexity"] = math.exp(loss * (1 + step))
        (folder / "metrics.json").write_text(json.dumps(run))
        assert bool(restated(as_record(run), "perplexity")) is said
        assert any(r.startswith("Recomputed") for r in recommend_from_results([run])["reasons"]) is said
        path = write_results_csv(tmp_path / "results.csv", [run])
        assert ("metrics.recorded.validation.perplexity" in path.read_text()) is said


def test_a_chosen_strategy_whose_test_interval_reaches_the_majority_class_is_said_so(tmp_path):
    """head chosen on validation (0.630, clear of chance) reached 0.540 [0.44, 0.64] on a test split whose most frequent
    class is 51 of 100: the recommendation only quoted the test number. It now says the interval reaches the 0.510 a
    constant predictor scores there, and the choice stays the same; a test interval clear of it says nothing more."""
    rng = np.random.default_rng(5)
    y_val = rng.permutation(np.repeat([0, 1], 100))
    y_test = rng.permutation(np.repeat([0, 1], [51, 49]))
    runs = [record(tmp_path, "full", {"validation": outputs(y_val, predictions(y_val, 0.65, 1)),
                                      "test": outputs(y_test, predictions(y_test, 0.70, 2))}, train_time=100),
            record(tmp_path, "head", {"validation": outputs(y_val, predictions(y_val, 0.63, 3)),
                                      "test": outputs(y_test, predictions(y_test, 0.54, 4))}, train_time=5)]
    rec = recommend_from_results(runs)
    assert rec["strategy"] == "head" and rec["chance"]["learned"] is True
    said = [r for r in rec["reasons"] if "most frequent class" in r]
    assert len(said) == 1, rec["reasons"]
    assert said[0].startswith(f"On the test split, held out from the choice, head reached 0.540 [{rec['test']['low']:.3f}, "
                              f"{rec['test']['high']:.3f}] accuracy, a 95 % interval that reaches 0.510, the test "
                              "accuracy of always predicting the most frequent class on the same 100 test examples: the "
                              "held-out split does not show that head learned the task")
    assert "(its validation accuracy: 0.630 [" in said[0] and "The choice stays on validation" in said[0]
    clear = [runs[0], record(tmp_path / "b", "head", {"validation": outputs(y_val, predictions(y_val, 0.63, 3)),
                                                      "test": outputs(y_test, predictions(y_test, 0.80, 4))}, train_time=5)]
    rec = recommend_from_results(clear)
    assert rec["strategy"] == "head" and not any("most frequent class" in r for r in rec["reasons"])


def test_a_gap_on_a_handful_of_texts_says_the_test_cannot_reach_the_level(tmp_path):
    """On 4 validation texts every paired p-value is at least 2^(1-4) = 0.125 (an exact sign-flip test's smallest),
    so a gap the bootstrap interval puts well off zero was kept as 'not distinguishable, p = 0.38'; the reason said
    only that 'the bootstrap interval ... is narrower than that test', which read as a contradiction. It now says why."""
    tokens = np.array([40.0, 55.0, 60.0, 48.0])
    base = np.array([4.0, 4.2, 3.9, 4.1])
    runs = [_lm_record(tmp_path, name, base + shift, tokens, None, cost)
            for name, shift, cost in (("full", 0.04, 10), ("lora", 0.0, 100))]
    rec = recommend_from_results(runs)
    full = next(r for r in rec["ranking"] if r["strategy"] == "full")["versus_best"]
    assert full["reason"] == "not_distinguishable" and full["interval_disagrees"], full
    assert full["p_raw"] == pytest.approx(0.125)
    kept = next(r for r in rec["reasons"] if r.startswith("full reached"))
    assert "on 4 validation texts no paired test can give p below 0.125" in kept, kept
    assert "narrower than that test" not in kept
