"""``tunelab compare``: runs in isolation, failures recorded, seeds, data fractions, resume, lr search.

Tiny random BERT (``tiny_bert_dir``) on a small CSV; most tests run the workers in-process
(``isolate=False``, the same ``run_spec`` code path) and one CLI test runs real subprocesses.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import pytest

from tunelab.compare.runner import compare, execute, parse_lr_overrides, plan_runs
from tunelab.config import TrainConfig
from tunelab.errors import ConfigError, TunelabError

_POS = ["good", "great", "excellent", "wonderful", "brilliant", "moving"]
_NEG = ["bad", "awful", "terrible", "boring", "dull", "weak"]
_FILL = ["the", "film", "movie", "story", "was", "really", "quite", "and", "acting", "plot"]


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory) -> Path:
    """80 labelled rows (pos / neg, balanced) as a CSV file."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(80):
            positive = i % 2 == 1
            words = rng.sample(_FILL, 4) + rng.sample(_POS if positive else _NEG, 2)
            rng.shuffle(words)
            writer.writerow([" ".join(words), "pos" if positive else "neg"])
    return path


def _base(model_dir: Path, data: Path, **changes) -> TrainConfig:
    return TrainConfig(model=str(model_dir), data=str(data), epochs=1, batch_size=8, save_steps=1000, **changes)


def _record(out: Path, run_id: str) -> dict:
    return json.loads((out / "runs" / run_id / "metrics.json").read_text())


def test_cli_compare_records_failure_writes_report_and_resumes(tiny_bert_dir, toy_csv, tmp_path, capsys):
    """Real worker subprocesses: a diverging learning rate fails `full` with its message, `head`
    succeeds; files, table and report are written; --resume keeps the finished run untouched."""
    from tunelab.cli.main import main

    out = tmp_path / "cmp"
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head,full",
            "--lr-overrides", "full=1e30", "--epochs", "1", "--batch-size", "8", "--out", str(out),
            "--no-pre-recommendation"]
    assert main(argv) == 0
    printed = capsys.readouterr().out

    head, full = _record(out, "head"), _record(out, "full")
    assert json.loads((out / "compare.json").read_text())["mode"] == "planned"  # no mode named: rounds (here one)
    assert "planned comparison: one round, every strategy on data fraction 1 (" in printed  # and it says why
    assert "fewer than 24, the planner's minimum" in printed
    assert head["run_info"]["status"] == "success"
    assert 0.0 <= head["metrics"]["test"]["accuracy"] <= 1.0
    assert head["train_info"]["trainable_params"] < head["train_info"]["total_params"]
    assert head["meta_info"]["data_fingerprint"] and head["meta_info"]["versions"]["torch"]
    assert (out / "runs" / "head" / "model").is_dir()
    assert full["run_info"]["status"] == "failed"
    assert "non-finite loss" in full["run_info"]["error"]
    assert full["config"]["lr"] == 1e30

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["run_info.strategy"] for r in rows) == ["full", "head"]
    assert (out / "report.html").stat().st_size > 0 and (out / "report.md").stat().st_size > 0
    table_rows = {}  # strategy name (first word of the first cell) -> its table line
    for line in printed.splitlines():
        cells = line.split("│")
        if len(cells) > 2 and cells[1].split():
            table_rows[cells[1].split()[0]] = line
    assert "success" in table_rows["head"] and "failed" in table_rows["full"]
    assert f"{head['metrics']['test']['accuracy']:.3f}" in table_rows["head"]
    assert "recommended: " in printed
    assert "full failed" in printed.replace("\n", " ")
    assert f"report: {out / 'report.html'}" in printed

    # the same command without --resume refuses to mix comparisons
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err

    head_json = out / "runs" / "head" / "metrics.json"
    head_mtime, full_mtime = head_json.stat().st_mtime_ns, (out / "runs" / "full" / "metrics.json").stat().st_mtime_ns
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert head_json.stat().st_mtime_ns == head_mtime  # finished run reused, not retrained
    assert "finished earlier, reused" in printed
    assert (out / "runs" / "full" / "metrics.json").stat().st_mtime_ns != full_mtime  # the failed one ran again
    assert _record(out, "full")["run_info"]["status"] == "failed"

    # when every run fails, the comparison still writes everything, and exits 1 with one line saying so
    alone = tmp_path / "alone"
    assert main([*argv[:5], "--strategies", "full", *argv[7:-3], "--out", str(alone), "--no-pre-recommendation"]) == 1
    err = capsys.readouterr().err
    failed = _record(alone, "full")["run_info"]
    assert failed["status"] == "failed" and (alone / "report.html").is_file()
    # the error itself, when every run failed with it (a cause common to them all), not only where to find it
    assert (f"tunelab: every run failed with the same error: {failed['error']}, so there is nothing to recommend; the "
            f"message is also in {alone / 'results.csv'}") in err, err


def test_seeds_give_mean_and_std_on_the_same_split(tiny_bert_dir, toy_csv, tmp_path):
    from tunelab.report import results_table

    result = compare(_base(tiny_bert_dir, toy_csv), ["bitfit"], out=tmp_path, seeds=2,
                     isolate=False, pre_recommend=False, log=None)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["bitfit-s42", "bitfit-s43"]
    full = result.results
    assert [r["run_info"]["seed"] for r in full] == [42, 43]
    assert {r["run_info"]["split_seed"] for r in full} == {42}
    assert len({r["meta_info"]["data_fingerprint"] for r in result.results}) == 1  # same examples for every seed
    accuracies = [r["metrics"]["test"]["accuracy"] for r in full]
    (row,) = results_table(result.results)
    assert row["n"] == 2
    assert row["test_mean"] == pytest.approx(sum(accuracies) / 2)
    assert row["test_std"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2**0.5)
    # different seeds really trained different weights (initialisation and order)
    losses = [r["train_info"]["epochs"][0].get("train_loss") for r in full]
    assert losses[0] != losses[1]
    # ... and listed the same evaluation examples in the same order, so the comparison over seeds is paired
    from tunelab.run.outputs import ExampleOutputs

    for split in ("validation", "test"):
        first, second = (ExampleOutputs.load(tmp_path / "runs" / rid, split) for rid in ("bitfit-s42", "bitfit-s43"))
        assert len(first) >= 8 and list(first.labels) == list(second.labels)
    assert result.recommendation["evidence"] == "examples"


def test_the_result_in_json_form_is_what_compare_json_prints(tiny_bert_dir, toy_csv, tmp_path, capsys):
    """A script or notebook that kept a comparison's result (json.dumps(result) failed: a dataclass of Paths and run
    records) gets the JSON form of ``tunelab compare --json`` from ``result.to_dict()``."""
    from tunelab.cli.compare import print_result

    result = compare(_base(tiny_bert_dir, toy_csv), ["head"], out=tmp_path, isolate=False, pre_recommend=False, log=None)
    payload = result.to_dict()
    assert json.loads(json.dumps(payload)) == payload  # plain JSON: no default= needed
    assert payload["out"] == str(tmp_path) and payload["recommendation"]["strategy"] == "head"
    assert payload["runs"][0] == json.loads((tmp_path / "runs" / "head" / "metrics.json").read_text())
    assert payload["report"]["html"] == str(result.report["html"])
    print_result(result, as_json=True)
    assert json.loads(capsys.readouterr().out) == payload


def test_data_in_memory_is_handed_to_the_runs_without_library_bars(capfd):
    """compare(data=frame, log=None) printed datasets' 'Saving the dataset' bars, one per split, into a quiet
    notebook cell; the hand-over to the runs' processes is now silent, and the data is there."""
    import datasets
    import pandas as pd

    from tunelab.compare.runner import _staged

    frame = pd.DataFrame({"text": [f"text {i}" for i in range(12)], "label": ["a", "b"] * 6})
    datasets.enable_progress_bars()
    with _staged({"train": frame, "test": frame}) as folder:
        assert datasets.load_from_disk(str(folder))["test"].num_rows == 12
    assert "Saving the dataset" not in capfd.readouterr().err
    assert datasets.is_progress_bar_enabled()  # the caller's setting as it was


def test_data_fractions_run_each_strategy_per_fraction(tiny_bert_dir, toy_csv, tmp_path):
    result = compare(_base(tiny_bert_dir, toy_csv), ["head", "full"], out=tmp_path, data_fractions=[1.0, 0.5],
                     exhaustive=True, isolate=False, pre_recommend=False, log=None)
    ids = [r["run_info"]["run_id"] for r in result.results]
    assert ids == ["head-f0.5", "full-f0.5", "head-f1", "full-f1"]  # fractions ascending
    n_train = {r["run_info"]["run_id"]: r["meta_info"]["n_train"] for r in result.results}
    assert n_train["head-f0.5"] == n_train["full-f0.5"] < n_train["head-f1"] == n_train["full-f1"]
    assert [row["data_fraction"] for row in result.crossover] == [0.5, 1.0]
    assert all(row["full_mean"] is not None for row in result.crossover)


def test_data_fractions_of_one_size_train_once_and_a_tiny_one_is_said_before_training(tiny_bert_dir, toy_csv, tmp_path):
    """0.999 and 1 of a few dozen examples are the same examples: they were trained twice, and a fraction of 1
    example trained without a word. Now one run per size, and one line each, before the first run."""
    said: list[str] = []
    result = compare(_base(tiny_bert_dir, toy_csv), ["head"], out=tmp_path, data_fractions=[0.01, 0.999, 1.0],
                     exhaustive=True, isolate=False, pre_recommend=False, log=said.append)
    assert [r["run_info"]["run_id"] for r in result.results] == ["head-f0.01", "head-f1"]
    assert [r["meta_info"]["n_train"] for r in result.results][0] == 1
    same = [line for line in said if "0.999 and 1 train on the same" in line]
    tiny = [line for line in said if "0.01 trains on 1 example, fewer than 24:" in line]
    assert len(same) == 1 and "trained once as 1" in same[0] and len(tiny) == 1
    first_run = next(i for i, line in enumerate(said) if "head-f0.01" in line)
    assert said.index(same[0]) < first_run and said.index(tiny[0]) < first_run


def test_tune_lr_searches_around_each_default_and_records_it(tiny_bert_dir, toy_csv, tmp_path):
    from tunelab.strategies import STRATEGIES

    result = compare(_base(tiny_bert_dir, toy_csv), ["head"], out=tmp_path, tune_lr=True, lr_factors=(0.3, 3.0),
                     isolate=False, pre_recommend=False, log=None)
    search = result.lr_search["head"]
    default = STRATEGIES["head"].default_lr
    assert [c["lr"] for c in search["candidates"]] == [pytest.approx(default * 0.3), pytest.approx(default * 3.0)]
    chosen = next(c for c in search["candidates"] if c["lr"] == search["chosen_lr"])
    assert chosen["validation"] == max(c["validation"] for c in search["candidates"])  # best validation wins
    record = result.results[0]
    assert record["config"]["lr"] == search["chosen_lr"] and record["train_info"]["learning_rate"] == search["chosen_lr"]
    assert record["lr_search"]["candidates"] == search["candidates"]
    assert json.loads((tmp_path / "compare.json").read_text())["learning_rates"]["head"] == search["chosen_lr"]


def test_the_lr_search_and_the_progress_lines_use_the_comparisons_metric(tiny_bert_dir, toy_csv, tmp_path):
    """--metric f1_macro: the learning-rate search chooses by validation macro-F1, and each run's line reports the
    validation macro-F1 (the split and metric that choose), not test accuracy."""
    lines: list[str] = []
    result = compare(_base(tiny_bert_dir, toy_csv), ["head"], out=tmp_path, tune_lr=True, lr_factors=(0.3, 3.0),
                     isolate=False, pre_recommend=False, log=lines.append, metric="f1_macro")
    search = result.lr_search["head"]
    assert search["metric"] == "f1_macro"
    f1 = {r["lr"]: r for r in search["candidates"]}
    assert f1[search["chosen_lr"]]["validation"] == max(c["validation"] for c in search["candidates"])
    done = [line for line in lines if "done:" in line]
    value = result.results[0]["metrics"]["validation"]["f1_macro"]
    assert done and f"done: validation f1_macro {value:.4f}" in done[0] and "test" not in done[0]
    assert not any(line.startswith("validation split:") for line in lines)  # its floor is accuracy's


def test_the_comparison_says_before_training_how_fine_a_verdict_its_validation_split_allows(tiny_bert_dir, toy_csv, tmp_path):
    from tunelab.advice.verdict import smallest_gap_shown
    from tunelab.run.training import load_data

    lines: list[str] = []
    base = _base(tiny_bert_dir, toy_csv)
    result = compare(base, ["head"], out=tmp_path, isolate=False, pre_recommend=False, log=lines.append)
    n = len(load_data(base).validation)
    assert result.results[0]["meta_info"]["n_validation"] == n  # the examples the run was chosen on
    said = [line for line in lines if line.startswith("validation split:")]
    assert said and said[0].startswith(f"validation split: {n:,} examples")
    assert f"a gap of about {100 * smallest_gap_shown(n, 0.05):.1f} accuracy points" in said[0]
    assert lines.index(said[0]) < next(i for i, line in enumerate(lines) if "training head" in line)  # before training


def test_killed_worker_is_recorded_as_failed(tiny_bert_dir, toy_csv, tmp_path):
    """A worker that dies without writing its record (here: stopped by the run timeout) is still recorded."""
    config = _base(tiny_bert_dir, toy_csv, strategy="head", out=str(tmp_path / "run"))
    record = execute({"config": config.to_dict(), "split_seed": 42}, tmp_path / "run", timeout_s=0.5)
    assert record["run_info"]["status"] == "failed"
    assert "longer than 0.5 s" in record["run_info"]["error"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["run_info"]["status"] == "failed"


def test_bad_options_are_reported_together_before_training(tmp_path):
    with pytest.raises(ConfigError) as info:
        compare(TrainConfig(), ["head", "nope", "head"], out=tmp_path, seeds=0, data_fractions=[0.0, 1.0],
                lr_overrides={"full": 1e-5}, isolate=False, log=None)
    text = str(info.value)
    for part in ("unknown nope", "more than once", "seeds=", "data_fractions=", "lr_overrides= names full"):
        assert part in text
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="STRATEGY=LR"):
        parse_lr_overrides("full:1e-5")
    assert parse_lr_overrides("full=1e-5, lora=1e-3") == {"full": 1e-5, "lora": 1e-3}


def test_existing_comparison_is_not_mixed_without_resume(tmp_path):
    (tmp_path / "runs" / "head").mkdir(parents=True)
    with pytest.raises(TunelabError, match="resume=True"):
        compare(TrainConfig(), ["head"], out=tmp_path, isolate=False, log=None)


def test_run_ids_and_per_run_configs(tmp_path):
    runs = plan_runs(TrainConfig(seed=7), ["head", "lora"], tmp_path, seeds=2, data_fractions=[0.3, 1.0], lrs={"lora": 1e-3})
    assert [r.run_id for r in runs][:4] == ["head-f0.3-s7", "head-f0.3-s8", "lora-f0.3-s7", "lora-f0.3-s8"]
    assert len(runs) == 8
    assert {r.config.lr for r in runs if r.strategy == "head"} == {None}  # the strategy's own default
    assert {r.config.lr for r in runs if r.strategy == "lora"} == {1e-3}
    assert all(Path(r.config.out) == tmp_path / "runs" / r.run_id for r in runs)


def test_demo_defaults_are_a_valid_comparison():
    from tunelab.cli.compare import DEMO
    from tunelab.cli.main import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.out == DEMO["out"] and not args.fresh and not args.exhaustive  # planned, unless --exhaustive
    TrainConfig(model=DEMO["model"], data=DEMO["data"], epochs=DEMO["epochs"],
                max_train_samples=DEMO["max_train_samples"], max_length=DEMO["max_length"]).validate()


def test_four_fractions_give_fitted_learning_curves_in_the_report(tiny_bert_dir, toy_csv, tmp_path):
    result = compare(_base(tiny_bert_dir, toy_csv), ["head", "full"], out=tmp_path,
                     data_fractions=[0.25, 0.5, 0.75, 1.0], exhaustive=True, isolate=False, pre_recommend=False, log=None)
    curves = result.recommendation["learning_curves"]
    assert curves["split"] == "validation" and curves["n_fractions"] == 4
    for strategy in ("head", "full"):
        curve = curves["curves"][strategy]
        assert curve["fitted"] and len(curve["n"]) == 4
        assert [p["n"] for p in curve["predictions"]] == [2 * max(curve["n"]), 5 * max(curve["n"])]
        assert all(p["low"] <= p["high"] for p in curve["predictions"])
    assert curves["full"] == "full" and curves["partial"] == "head" and curves["crossover"]["status"] != "no_fit"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Learning curves: validation accuracy vs labelled examples" in page  # the fitted-curve plot
    assert "Asymptote" in page and "Predicted at 2× and 5× the labels" in page
    assert "Confusion matrix on the test split" in page  # the recommended strategy's, from its saved outputs
    for run in result.results:
        assert (Path(run.config["out"]) / "outputs" / "validation.npz").is_file()


def test_metric_that_does_not_apply_to_the_task_is_one_error_line(tiny_bert_dir, toy_csv, tmp_path, capsys):
    from tunelab.cli.main import main

    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head",
            "--out", str(tmp_path / "o"), "--metric", "perplexity", "--no-pre-recommendation"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunelab: error:") and err.count("\n") == 1
    assert "--metric perplexity does not apply to classification" in err
    assert not (tmp_path / "o").exists()


def test_a_causal_lm_comparison_with_a_soft_prompt_scores_every_run_across_texts(tiny_llama_dir, tmp_path):
    """A soft prompt's packed texts attend to the texts before them (it cannot keep them apart), the other strategies'
    each read alone, and the comparison ranked the two kinds of perplexity together: on 64 maintenance notes it chose
    prompt-tuning (55.8 across texts) over LoRA (121.4 alone; 35.7 across texts). Every run is now scored alike."""
    doc = tmp_path / "doc.txt"
    doc.write_text("".join(f"the pump was serviced and the seal was replaced {i} . " * 6 + "\n\n" for i in range(24)))
    said: list[str] = []
    result = compare(_base(tiny_llama_dir, doc, max_length=32), ["lora", "prompt-tuning"], out=tmp_path / "pt",
                     exhaustive=True, isolate=False, pre_recommend=False, log=said.append)
    assert all(r.run_info.status == "success" for r in result.results)
    assert {r.train_info.document_mask for r in result.results} == {False}
    assert len([m for m in said if "cannot keep them apart" in m]) == 1
    assert not [r for r in result.recommendation["reasons"] if "not measured alike" in r]
    alone = compare(_base(tiny_llama_dir, doc, max_length=32), ["lora"], out=tmp_path / "lora", exhaustive=True,
                    isolate=False, pre_recommend=False, log=said.append)
    assert alone.results[0].train_info.document_mask is True  # nothing to score alike: the default stays


def test_a_comparison_with_a_soft_prompt_started_scoring_per_text_resumes_as_it_ran(tiny_llama_dir, tmp_path,
                                                                                    monkeypatch):
    """A comparison of LoRA and a soft prompt started before every run was scored across texts recorded
    document_mask=True in its compare.json; its --resume now asked document_mask=False and was refused as 'other
    settings than it ran with', which no flag could undo (--document-mask was overridden too). It resumes as it ran; the
    verdict's reasons say its runs were not measured alike."""
    from tunelab.compare import runner

    doc = tmp_path / "doc.txt"
    doc.write_text("".join(f"the pump was serviced and the seal was replaced {i} . " * 6 + "\n\n" for i in range(24)))
    out = tmp_path / "pt"
    base = _base(tiny_llama_dir, doc, max_length=32)
    with monkeypatch.context() as before:  # the comparison as it ran before runs were scored alike
        before.setattr(runner, "_scored_alike", lambda base, *args: base)
        compare(base, ["lora", "prompt-tuning"], out=out, exhaustive=True, isolate=False, pre_recommend=False, log=None)
    said: list[str] = []
    result = compare(base, ["lora", "prompt-tuning"], out=out, exhaustive=True, isolate=False, pre_recommend=False,
                     resume=True, log=said.append)
    assert all(r.run_info.status == "success" for r in result.results)
    assert {r.run_info.strategy: r.train_info.document_mask for r in result.results} == {"lora": True,
                                                                                    "prompt-tuning": False}
    assert [r for r in result.recommendation["reasons"] if "not measured alike" in r]


def test_without_named_strategies_a_causal_lm_comparison_trains_the_defaults_that_apply(tiny_llama_dir, tmp_path, capsys):
    """The default comparison is each strategy's own fact (``compared_by_default``) filtered by the task: a causal-LM
    comparison leaves out ``head`` instead of recording it as a failed run; naming it is refused up front."""
    from tunelab.cli.main import main
    from tunelab.strategies import default_comparison

    doc = tmp_path / "doc.txt"
    doc.write_text("".join(f"the film was good and the story was moving {i} . " * 12 + "\n\n" for i in range(24)))
    result = compare(_base(tiny_llama_dir, doc, max_length=32), out=tmp_path / "lm", exhaustive=True, isolate=False,
                     pre_recommend=False, log=None)
    assert sorted(r.config["strategy"] for r in result.results) == sorted(default_comparison("causal-lm"))
    assert "head" in default_comparison() and "head" not in default_comparison("causal-lm")
    assert all(r.run_info.status == "success" for r in result.results)
    # its numbers, from the saved outputs (texts, float64), part from the recorded ones only past the 7th digit: no note
    assert not [r for r in result.recommendation["reasons"] if r.startswith("Recomputed from the runs' saved outputs")]
    capsys.readouterr()
    argv = ["compare", "--model", str(tiny_llama_dir), "--data", str(doc), "--strategies", "head,lora",
            "--out", str(tmp_path / "o"), "--no-pre-recommendation"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunelab: error: --strategies: head cannot train a causal-lm task") and err.count("\n") == 1
    assert "--strategies lora" in err and not (tmp_path / "o").exists()


def test_a_comparison_under_a_launcher_is_refused_in_one_line(tiny_bert_dir, toy_csv, tmp_path, monkeypatch):
    """Under torchrun every process would run the whole comparison and write the same folder at once."""

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"tunelab compare runs in one process.*one of 2 processes under a launcher"):
        compare(TrainConfig(model=str(tiny_bert_dir), data=str(toy_csv)), ["head", "lora"], out=tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()
    monkeypatch.delenv("WORLD_SIZE")  # under mpirun it said "run it without torchrun / accelerate launch"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"one of 2 processes under mpirun\): run it without a launcher, as plain"):
        compare(TrainConfig(model=str(tiny_bert_dir), data=str(toy_csv)), ["head", "lora"], out=tmp_path / "cmp")


def test_a_strategy_the_caller_registered_trains_in_the_comparisons_own_processes(tiny_bert_dir, toy_csv, tmp_path,
                                                                                 monkeypatch):
    """register_strategy in the user's own module (next to their script, not installed): each run's process imports
    that module too, so the strategy trains there as it does in train(); one defined in the running script itself
    cannot be imported by a process and is refused in one line before anything runs."""
    from tunelab.errors import ConfigError
    from tunelab.strategies import STRATEGIES, register_strategy
    from tunelab.strategies.head import Head

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my_strategies.py").write_text(
        "from tunelab.strategies import register_strategy\nfrom tunelab.strategies.head import Head\n"
        "@register_strategy\nclass MyHead(Head):\n    name = 'my-head'\n    summary = 'the head, registered by a user'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mine"))
    before = dict(STRATEGIES)
    try:
        import my_strategies  # noqa: F401 - registers my-head

        result = compare(_base(tiny_bert_dir, toy_csv), ["my-head"], out=tmp_path / "out", exhaustive=True,
                         pre_recommend=False, log=None)
        assert all(r["run_info"]["status"] == "success" for r in result.results), [
            r["run_info"]["error"] for r in result.results]

        class ScriptHead(Head):
            name, summary = "script-head", "defined in __main__"

        ScriptHead.__module__ = "__main__"
        register_strategy(ScriptHead)
        with pytest.raises(ConfigError, match="strategy 'script-head' is defined in the script that runs the comparison"):
            compare(_base(tiny_bert_dir, toy_csv), ["script-head"], out=tmp_path / "out2", pre_recommend=False, log=None)
        assert not (tmp_path / "out2").exists()
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(before)
        sys.modules.pop("my_strategies", None)


def test_the_first_demo_starts_without_a_resume_warning_and_a_later_one_reuses_its_runs(tmp_path, monkeypatch):
    """`make demo` on a fresh clone warned "--resume: runs/demo holds no comparison to resume", a flag the user never
    typed: the demo resumes only an earlier demo's folder."""
    import tunelab.cli.compare as cli_compare
    from tunelab.cli.main import build_parser

    asked = []
    monkeypatch.setattr(cli_compare, "compare", lambda base, strategies, **kw: asked.append(kw) or None)
    monkeypatch.setattr(cli_compare, "print_result", lambda *a, **k: None)
    monkeypatch.setattr(cli_compare, "_exit_code", lambda result: 0)
    out = tmp_path / "demo"
    cli_compare.cmd_demo(build_parser().parse_args(["-q", "demo", "--out", str(out)]))
    out.mkdir()
    (out / "runs").mkdir()
    cli_compare.cmd_demo(build_parser().parse_args(["-q", "demo", "--out", str(out)]))
    cli_compare.cmd_demo(build_parser().parse_args(["-q", "demo", "--out", str(out), "--fresh"]))
    assert [(kw["resume"], kw["overwrite"]) for kw in asked] == [(False, False), (True, False), (False, True)]


def test_a_resumed_comparison_does_not_reuse_a_run_on_other_rows_of_the_same_file(tiny_bert_dir, toy_csv, tmp_path,
                                                                                  runs_in_process, capsys, caplog):
    """--resume reused every finished run whose settings matched, even when the file at --data had been edited since:
    the comparison then mixed runs on two datasets. A run records the data as split (``split_fingerprint``), and a
    finished run on other rows is trained again, with a line saying why; the unchanged file is still reused."""
    import shutil

    from tunelab.cli.main import main

    data = tmp_path / "d.csv"
    shutil.copy(toy_csv, data)
    out = tmp_path / "cmp"
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(data), "--strategies", "head", "--epochs", "1",
            "--batch-size", "8", "--out", str(out), "--no-pre-recommendation", "--exhaustive", "--resume"]
    assert main(argv) == 0
    first = _record(out, "head")
    assert first["meta_info"]["split_fingerprint"]
    capsys.readouterr()
    assert main(argv) == 0
    assert "finished earlier, reused" in capsys.readouterr().out
    lines = data.read_text().splitlines()
    lines[5] = lines[5].replace(",", " (edited),", 1)  # one text changed, same settings
    data.write_text("\n".join(lines) + "\n")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "finished earlier, reused" not in captured.out
    assert f"{out / 'runs' / 'head'} holds a run on other data (the same --data, other rows): trained again" in caplog.text
    assert _record(out, "head")["meta_info"]["split_fingerprint"] != first["meta_info"]["split_fingerprint"]


def test_a_resumed_comparison_on_a_grown_file_trains_again_with_the_epochs_its_size_takes(tiny_bert_dir, toy_csv,
                                                                                         tmp_path, runs_in_process,
                                                                                         capsys, caplog):
    """A --data file that grew between two `compare --resume` calls (no --epochs given) was refused as "other settings
    than it ran with (--epochs 15.0 → 8.0)": a flag the user never passed. The epochs follow the data's size, and
    runs on other data train again (as for an edited file): a line says so, and the comparison goes on."""
    from tunelab.cli.main import main

    lines = toy_csv.read_text().splitlines()
    data = tmp_path / "d.csv"
    data.write_text("\n".join(lines[:41]) + "\n")  # the header and 40 rows
    out = tmp_path / "cmp"
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(data), "--strategies", "head", "--batch-size", "8",
            "--out", str(out), "--no-pre-recommendation", "--exhaustive", "--resume"]
    assert main(argv) == 0
    first = _record(out, "head")
    data.write_text("\n".join(lines) + "\n")  # all 80
    capsys.readouterr()
    with caplog.at_level("WARNING", logger="tunelab"):
        assert main(argv) == 0, capsys.readouterr().err
    again = _record(out, "head")
    assert again["config"]["epochs"] < first["config"]["epochs"] and again["meta_info"]["n_train"] > first["meta_info"]["n_train"]
    assert f"{data} has changed since the comparison in {out} ran" in caplog.text and "its runs train again" in caplog.text
    assert "holds a run on other data" in caplog.text
    # a setting the user did change is still refused, data or not
    data.write_text("\n".join(lines[:41]) + "\n")
    assert main([*argv, "--lr-overrides", "head=0.5", "--epochs", "2"]) == 2
    assert "with other settings than it ran with (--epochs" in capsys.readouterr().err


def test_compare_never_writes_over_what_it_did_not_make_nor_retrains_a_finished_run_on_changed_flags(
        tiny_bert_dir, toy_csv, tmp_path, runs_in_process, capsys, caplog):
    """A comparison into a folder of the user's (their results.csv and notes, a `tunelab train` run) wrote its
    results.csv and report over theirs; `compare --resume` with a changed flag deleted the finished runs and trained
    them again after one warning line. Both are refused in one line (exit 2), nothing touched; --overwrite writes there,
    leaving files of other names alone."""
    from tunelab.cli.main import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my,own\n")
    (mine / "notes.txt").write_text("notes\n")
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head", "--epochs", "1",
            "--batch-size", "8", "--no-pre-recommendation", "--exhaustive"]
    assert main([*argv, "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{mine} is not empty (notes.txt and 1 more) and holds no comparison" in err, err
    assert (mine / "results.csv").read_text() == "my,own\n" and sorted(p.name for p in mine.iterdir()) == [
        "notes.txt", "results.csv"]
    assert main([*argv, "--out", str(mine), "--resume"]) == 2  # nothing to resume there either: the same refusal
    assert main([*argv, "--out", str(mine), "--overwrite"]) == 0
    assert (mine / "notes.txt").read_text() == "notes\n" and (mine / "results.csv").read_text() != "my,own\n"

    out = tmp_path / "cmp"
    assert main([*argv, "--out", str(out)]) == 0
    first = _record(out, "head")
    capsys.readouterr()
    for changed, said in ((["--epochs", "2"], "with other settings than it ran with (--epochs 1.0 → 2.0)"),
                          (["--lr-overrides", "head=0.5"], f"found {out / 'runs' / 'head'} trained with other settings "
                                                           "(--lr default → 0.5)")):
        assert main([*argv, "--out", str(out), "--resume", *changed]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
        assert _record(out, "head") == first  # the finished run is kept as it was
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert "finished earlier, reused" in capsys.readouterr().out
    # a run that failed (a learning rate that diverged) holds nothing to lose: given another rate on --resume, it
    # trains again, said in a line, and the finished run beside it is reused
    failing = [*argv[:5], "--strategies", "head,bitfit", *argv[7:], "--out", str(tmp_path / "f")]
    assert main([*failing, "--lr-overrides", "bitfit=1e30"]) == 0
    assert _record(tmp_path / "f", "bitfit")["run_info"]["status"] == "failed"
    with caplog.at_level("WARNING", logger="tunelab"):
        assert main([*failing, "--lr-overrides", "bitfit=1e-3", "--resume"]) == 0
    assert _record(tmp_path / "f", "bitfit")["run_info"]["status"] == "success"
    assert "holds a failed run with other settings (--lr 1e+30 → 0.001): trained again" in caplog.text


def test_metric_is_read_in_any_spelling_of_its_words_and_a_typo_gets_a_suggestion(tiny_bert_dir, toy_csv, tmp_path):
    """--metric macro-f1 (or macro_f1, f1-macro) was refused: only f1_macro was accepted, with no hint."""
    result = compare(_base(tiny_bert_dir, toy_csv), ["head"], out=tmp_path / "a", metric="macro-F1",
                     isolate=False, pre_recommend=False, log=None)
    assert result.recommendation["metric"] == "f1_macro"
    with pytest.raises(ConfigError, match=r"metric='f1macro' is unknown \(did you mean f1_macro\?\)"):
        compare(_base(tiny_bert_dir, toy_csv), ["head"], out=tmp_path / "b", metric="f1macro",
                isolate=False, pre_recommend=False, log=None)


def test_strategies_given_as_one_string_are_the_names_it_lists(tiny_bert_dir, toy_csv, tmp_path):
    """``compare(base, "head,lora")``, as ``--strategies head,lora`` is written, was spelled letter by letter:
    "--strategies: unknown h, e, a, d, ,, l, ...". A string lists names separated by commas, in compare and recommend."""
    from tunelab.advice.recommend import recommend

    base = TrainConfig(model=str(tiny_bert_dir), data=str(toy_csv), epochs=1, batch_size=8)
    with pytest.raises(ConfigError) as refused:
        compare(base, "head, nope", out=tmp_path / "cmp", isolate=False, pre_recommend=False, log=None)
    assert "unknown nope;" in str(refused.value) and "unknown h," not in str(refused.value)
    with pytest.raises(TunelabError) as refused:
        recommend(str(tiny_bert_dir), str(toy_csv), strategies="head,nope", measure_costs=False)
    assert "nope" in str(refused.value) and "'h'" not in str(refused.value)


def test_a_keyword_compare_does_not_take_is_one_line_naming_it():
    """A misspelt option raised CompareOptions.__init__'s raw TypeError: one ConfigError line says where the value
    goes instead."""
    from tunelab.compare.runner import compare
    from tunelab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"compare\(epochs=...\): epochs is a setting of every run: give it in base"):
        compare(TrainConfig(), ["head"], epochs=2)
    with pytest.raises(ConfigError, match=r"compare\(seed=...\): .*give it in base|did you mean seeds"):
        compare(TrainConfig(), ["head"], seed=2)
    with pytest.raises(ConfigError, match=r"compare\(exhaustiv=...\): no such option \(did you mean exhaustive\?\)"):
        compare(TrainConfig(), ["head"], exhaustiv=True)


def test_a_comparison_resumed_with_more_seeds_reuses_its_single_seed_run(tiny_bert_dir, toy_csv, tmp_path,
                                                                         runs_in_process, capsys):
    """`compare --resume --seeds 2` on a comparison that ran with one seed trained seed 42 again as ``head-s42`` beside
    the finished ``head`` (the same run, named without its seed), which the results then no longer listed. The run is
    renamed to the name this comparison gives it and reused, its record pointing at its new place."""
    from tunelab.cli.main import main

    out = tmp_path / "cmp"
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head", "--epochs", "1",
            "--batch-size", "8", "--out", str(out), "--no-pre-recommendation", "--exhaustive", "--resume"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "head-s42: finished earlier, reused" in printed and "head-s43: training head" in printed
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["head-s42", "head-s43"]
    record = _record(out, "head-s42")
    assert record["run_info"]["run_id"] == "head-s42" and record["config"]["out"] == str(out / "runs" / "head-s42")
    assert "runs/head/" not in (out / "runs" / "head-s42" / "run_config.yaml").read_text() + json.dumps(record)
    rows = (out / "results.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == ["head-s42", "head-s43"]


def test_compare_takes_data_in_memory_saves_it_in_its_folder_and_resumes(tiny_bert_dir, toy_csv, tmp_path):
    """compare(base, data=frame) was refused (write it to a file first), where train, recommend and estimate take a
    DataFrame: the data is checked, saved into the comparison's folder (OUT/data), where each run reads it, and
    compare(..., resume=True) with the same data, as a list of dicts this time, reuses the finished run."""
    import pandas as pd

    from tunelab.errors import DataError

    frame = pd.read_csv(toy_csv)
    base = TrainConfig(model=str(tiny_bert_dir), epochs=1, batch_size=8, save_steps=1000, forgetting=False)
    options = dict(out=tmp_path / "cmp", isolate=False, pre_recommend=False, log=None, exhaustive=True)
    result = compare(base, ["head"], data=frame, **options)
    (record,) = result.results
    assert record["run_info"]["status"] == "success"
    assert (tmp_path / "cmp" / "data" / "dataset_info.json").is_file()
    assert record["config"]["data"] == str(tmp_path / "cmp" / "data")
    again = compare(base, ["head"], data=frame.to_dict("records"), resume=True, **options)
    assert again.reused == ["head"]
    with pytest.raises(DataError, match=r"compare\(data=...\) takes a datasets Dataset / DatasetDict, a pandas DataFrame, .*; got a int"):
        compare(base, ["head"], data=42, out=tmp_path / "other", log=None)
    assert not (tmp_path / "other").exists()


def test_a_reused_run_recorded_under_the_old_macro_f1_is_shown_as_its_outputs_give_it(tiny_bert_dir, tmp_path):
    """compare --resume reused a run recorded before macro F1 averaged the split's gold classes: its reuse line, the
    ranking and results.csv showed metrics.json's value (scikit-learn's default, over the gold or predicted classes)
    while its interval was of today's. Now they show the value its saved outputs give, and say what was recorded."""
    import numpy as np
    from sklearn.metrics import f1_score

    from tunelab.run.outputs import ExampleOutputs

    rng = random.Random(1)
    data = tmp_path / "data"
    data.mkdir()
    words = {"pos": _POS, "neg": _NEG, "meh": ["fine", "okay", "average", "plain"]}

    def rows(labels: list[str], said: list[str] | None = None) -> str:
        return "text,label\n" + "".join(f"{' '.join(rng.sample(_FILL, 3) + rng.sample(words[w], 2))},{y}\n"
                                         for y, w in zip(labels, said or labels))

    (data / "train.csv").write_text(rows(["meh", "pos", "neg"] * 16))
    for split in ("validation", "test"):  # no "meh" example, but some said in its words: a miss of pos or neg
        (data / f"{split}.csv").write_text(rows(["pos", "neg"] * 12, ["pos", "neg"] * 8 + ["meh"] * 8))
    base = _base(tiny_bert_dir, data, forgetting=False).replace(epochs=20, lr=5e-2)
    said: list[str] = []
    options = dict(out=tmp_path / "cmp", isolate=False, pre_recommend=False, exhaustive=True, metric="f1_macro")
    (run,) = compare(base, ["head"], log=None, **options).results
    saved = ExampleOutputs.load(tmp_path / "cmp" / "runs" / "head", "validation")
    meh = run["meta_info"]["label_names"].index("meh")
    assert meh in set(saved.predictions.tolist()) and meh not in set(saved.labels.tolist()), saved.predictions
    today = run["metrics"]["validation"]["f1_macro"]
    old = float(f1_score(saved.labels, saved.predictions, average="macro"))  # what metrics.json held before session 43
    assert old < today
    path = tmp_path / "cmp" / "runs" / "head" / "metrics.json"
    recorded = json.loads(path.read_text())
    recorded["metrics"]["validation"]["f1_macro"] = old
    path.write_text(json.dumps(recorded))

    again = compare(base, ["head"], log=said.append, resume=True, **options)
    assert again.reused == ["head"]
    (line,) = [line for line in said if "finished earlier, reused" in line]
    assert (f"validation f1_macro {today:.4f}, {old:.4f} in its metrics.json, recomputed from its saved outputs with "
            "today's definition") in line
    (row,) = again.recommendation["ranking"]
    assert row["mean"] == pytest.approx(today) and row["mean"] == pytest.approx(row["validation"]["estimate"])
    assert any(r.startswith("Recomputed from the runs' saved outputs") for r in again.recommendation["reasons"])
    with open(tmp_path / "cmp" / "results.csv", newline="") as handle:
        (flat,) = list(csv.DictReader(handle))
    assert float(flat["metrics.validation.f1_macro"]) == pytest.approx(today)
    assert float(flat["metrics.recorded.validation.f1_macro"]) == pytest.approx(old)
    assert float(flat["metrics.validation.accuracy"]) == recorded["metrics"]["validation"]["accuracy"]
    assert np.isclose(today, f1_score(saved.labels, saved.predictions, labels=[0, 1, 2][:meh] + [0, 1, 2][meh + 1:],
                                      average="macro"))


def test_tunelab_compare_is_callable_and_its_result_prints_in_one_line(tmp_path):
    """tunelab.compare(...) from a notebook: 'module tunelab has no attribute compare' before the subpackage was
    imported, 'module object is not callable' after; and the result printed every run record in full."""
    import subprocess
    import sys

    import tunelab
    from tunelab.compare.runner import CompareResult
    from tunelab.errors import ConfigError

    with pytest.raises(ConfigError, match="nope"):
        tunelab.compare(TrainConfig(), ["nope"])
    fresh = subprocess.run([sys.executable, "-c", "import tunelab; print(callable(tunelab.compare))"],
                           capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "True", fresh.stderr
    result = CompareResult(out=tmp_path, results=[], recommendation={"strategy": "lora", "metric": "accuracy"},
                           report={}, reused=["head"])
    assert repr(result) == (f"CompareResult(out={str(tmp_path)!r}, recommended='lora', metric='accuracy', runs=0, "
                            "1 reused)")


def _as_before_layers_was_none(out: Path, layers: int) -> None:
    """Make a comparison folder look as one written while ``--layers`` defaulted to 2: every run's record, spec and
    run_config.yaml and the comparison's base config say ``layers: <layers>``."""
    import yaml

    for path, key in [(p, "config") for p in (out / "runs").glob("*/metrics.json")] + \
                     [(p, "config") for p in (out / "runs").glob("*/spec.json")] + [(out / "compare.json", "base_config")]:
        values = json.loads(path.read_text())
        values[key]["layers"] = layers
        path.write_text(json.dumps(values))
    for path in (out / "runs").glob("*/run_config.yaml"):
        values = yaml.safe_load(path.read_text())
        values["layers"] = layers
        path.write_text(yaml.safe_dump(values, sort_keys=False))


def test_a_resumed_comparison_reuses_runs_recorded_with_the_value_a_default_resolves_to(tiny_bert_dir, toy_csv,
                                                                                         tmp_path, runs_in_process,
                                                                                         capsys):
    """Until session 43 --layers defaulted to 2, and every run of a comparison recorded ``layers: 2``; it now defaults
    to None (2, or every block of a model with fewer). compare --resume of such a folder refused its finished runs,
    head's included, as 'trained with other settings (--layers 2 → default)'. A strategy option another strategy
    reads is no difference for this one, and last-n resolves None on the run's model (its record's num_blocks) to the
    recorded 2: both runs are reused. A recorded value the default does not resolve to is still refused."""
    from tunelab.cli.main import main

    out = tmp_path / "cmp"
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head,last-n",
            "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-pre-recommendation", "--exhaustive"]
    assert main(argv) == 0
    assert _record(out, "last-n")["meta_info"]["num_blocks"] == 3  # the default trains the top 2 of 3
    _as_before_layers_was_none(out, 2)
    times = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "[1/2] head: finished earlier, reused" in printed and "[2/2] last-n: finished earlier, reused" in printed
    assert {p: p.stat().st_mtime_ns for p in times} == times  # neither trained again

    _as_before_layers_was_none(out, 3)  # --layers 3 of 3 blocks: not what the default trains
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--resume found {out / 'runs' / 'last-n'} trained with other settings (--layers 3 → default)" in err

    # a run interrupted before it wrote metrics.json: its run_config.yaml, checkpoint and progress.json do not say how
    # many blocks the model has; the model's config does (3 here), and the default resolves to the recorded 2 there
    _as_before_layers_was_none(out, 2)
    (out / "runs" / "last-n" / "metrics.json").unlink()
    (out / "runs" / "last-n" / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "[1/2] head: finished earlier, reused" in printed and "[2/2] last-n: resuming last-n" in printed


def test_strategy_options_resolve_on_the_recorded_model():
    """The unit under the test above: which recorded ``layers`` a config compares equal to, given the model's blocks."""
    last_n, head = TrainConfig(strategy="last-n"), TrainConfig(strategy="head")
    recorded = {**last_n.to_dict(), "layers": 2}
    assert last_n.changed_from(recorded, num_blocks=6) == []
    assert last_n.changed_from(recorded, num_blocks=1) == [("layers", 2, None)]  # None trains the one block there
    assert last_n.changed_from(recorded) == [("layers", 2, None)]  # the model unknown: a difference, as before
    assert last_n.replace(layers=3).changed_from(recorded, num_blocks=6) == [("layers", 2, 3)]
    assert last_n.replace(layers=2).changed_from(last_n.to_dict(), num_blocks=6) == []  # and the other way round
    assert head.changed_from({**head.to_dict(), "layers": 5}) == []  # head reads no --layers
    assert head.changed_from({**head.to_dict(), "lora_r": 4}) == []


def test_an_interrupted_runs_options_resolve_on_its_models_blocks(tiny_bert_dir, tmp_path):
    """A run without a record (interrupted before metrics.json) is compared on the blocks of its model, counted from
    the model's config (no weights) as a loaded model's layout counts them; a model that cannot be read leaves the
    count unknown, and the difference stands."""
    from tunelab.models import model_num_blocks

    assert model_num_blocks(str(tiny_bert_dir)) == 3
    assert model_num_blocks(str(tmp_path / "no-such-model")) is None
    last_n = TrainConfig(strategy="last-n", model=str(tiny_bert_dir))
    assert last_n.changed_from_run({**last_n.to_dict(), "layers": 2}) == []
    assert last_n.changed_from_run({**last_n.to_dict(), "layers": 3}) == [("layers", 3, None)]
    assert last_n.changed_from_run({**last_n.to_dict(), "layers": 3}, num_blocks=6) == [("layers", 3, None)]  # recorded
    elsewhere = last_n.replace(model=str(tmp_path / "no-such-model"))
    assert elsewhere.changed_from_run({**elsewhere.to_dict(), "layers": 2}) == [("layers", 2, None)]


def test_the_shared_cache_splits_a_model_at_the_blocks_its_layout_counts(tmp_path):
    """The comparison's shared frozen-layer cache took a strategy's split from ``config.num_hidden_layers``: on ALBERT
    (12 layers that run one shared block) head's split was 12 and last-n's 10 of a model of one block. It now counts
    the blocks as the run's layout does (:func:`tunelab.models.model_num_blocks`)."""
    from transformers import AlbertConfig, AlbertModel

    from tunelab.compare.runner import _frozen_split

    AlbertModel(AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                             num_attention_heads=4, intermediate_size=64)).save_pretrained(tmp_path / "albert")
    config = TrainConfig(model=str(tmp_path / "albert"))
    # last-n keeps no block of the one frozen: nothing to share (None, as Strategy.frozen_prefix says it since c7554d9)
    assert [_frozen_split(config.replace(strategy=s)) for s in ("head", "last-n")] == [1, None]


def test_a_saved_advice_with_a_negative_time_gives_the_comparison_no_estimate():
    """A resumed comparison reads pre_recommendation.json as its first start saved it; one saved while the estimate's
    probes could give a negative time held lora at -5,792 s, which the budget and the planner took as a time."""
    from tunelab.compare.runner import _estimated_seconds

    pre = {"estimates": [{"strategy": "lora", "train_time_s": -5791.774, "time_per_step_s": -92.444},
                         {"strategy": "head", "train_time_s": 0.0},
                         {"strategy": "full", "train_time_s": 120.0, "cache_build_s": 5.0}]}
    assert _estimated_seconds(pre) == {"full": 125.0}


def test_a_kill_while_a_resumed_comparison_renames_a_run_leaves_its_settings_whole(tmp_path, monkeypatch):
    """``runs/head`` renamed ``runs/head-s42`` (compare --resume --seeds 2) has its run_config.yaml rewritten to its new
    place atomically: written in place, a kill half-way cut short the settings of a run interrupted before its record,
    the only settings --resume reads for it."""
    from tunelab.compare import runner

    old, new = tmp_path / "runs" / "head", tmp_path / "runs" / "head-s42"
    old.mkdir(parents=True)
    settings = f"model: minilm\nstrategy: head\nout: {old}\nlr: 0.001\n"
    (old / "run_config.yaml").write_text(settings)

    def killed_half_way(self, text, *args, **kwargs):
        Path.write_bytes(self, text[: len(text) // 2].encode())
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_half_way)
    try:
        runner._rename_run(old, new, str(old))
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert (new / "run_config.yaml").read_text() in (settings, settings.replace(str(old), str(new)))


def test_ctrl_c_in_compare_from_python_says_where_its_runs_are_and_how_to_resume(tmp_path, monkeypatch):
    """Ctrl-C in compare() from a notebook was a bare KeyboardInterrupt (an empty message), while the command said
    where the finished runs are and how to resume: from Python it is now a RunInterrupted (a KeyboardInterrupt still)
    naming the folder and resume=True; under the command it goes on unchanged to the command's own hint."""
    from tunelab.compare import runner
    from tunelab.errors import settings_as_flags
    from tunelab.run.resilience import RunInterrupted

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_checked_inputs", interrupted)
    rows = [{"text": f"text {i}", "label": i % 2} for i in range(20)]
    with pytest.raises(RunInterrupted) as caught:
        runner.compare({"model": "minilm"}, ["head"], data=rows, out=tmp_path / "cmp", log=None)
    said = str(caught.value)
    assert f"finished runs are kept in {tmp_path / 'cmp'}" in said and "resume=True" in said and "--" not in said, said
    with settings_as_flags(), pytest.raises(KeyboardInterrupt) as caught:
        runner.compare({"model": "minilm", "data": "rotten-tomatoes"}, ["head"], log=None)
    assert type(caught.value) is KeyboardInterrupt


def test_the_saved_advice_is_reused_unless_an_extra_key_a_compared_strategy_reads_changed(tmp_path, monkeypatch):
    """compare --resume asked `tunelab recommend` again when any --extra key changed (its saved advice was matched on
    the whole extra), even one no compared strategy reads; now on the keys they or tunelab read (extra_in_effect)."""
    from tunelab.compare import runner

    asked = []
    monkeypatch.setattr(runner, "_pre_recommendation", lambda base, *a, **k: asked.append(base.extra) or {"strategy": "head"})
    base = TrainConfig(model="minilm", data="d.csv")
    opts = runner.CompareOptions(resume=True)

    def advice(**extra):
        return runner._advice_before_training(base.replace(extra=extra), ["head", "bitfit"], tmp_path, opts,
                                              lambda _msg: None, None)

    assert advice() == {"strategy": "head"} and len(asked) == 1
    assert advice(top=2) == {"strategy": "head"} and len(asked) == 1  # a plugin's key that head and bitfit do not read
    advice(top=2, cache_dtype="float32")  # tunelab's own key (the cache's dtype): asked again
    assert asked[-1] == {"top": 2, "cache_dtype": "float32"} and len(asked) == 2


def test_a_resumed_comparison_compares_only_the_extra_keys_a_strategy_reads(tiny_bert_dir, toy_csv, tmp_path,
                                                                           runs_in_process, capsys):
    """`compare --resume --extra top=2` (a plugin's setting) trained head and bitfit again, which read no --extra key:
    a finished run is reused unless a key its strategy (or tunelab: the cache's dtype) reads has changed."""
    from tunelab.cli.main import main

    out = tmp_path / "cmp"
    argv = ["compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategies", "head,bitfit",
            "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-pre-recommendation", "--exhaustive"]
    assert main(argv) == 0
    first = {run: _record(out, run) for run in ("head", "bitfit")}
    capsys.readouterr()
    assert main([*argv, "--resume", "--extra", "top=2"]) == 0
    assert capsys.readouterr().out.count("finished earlier, reused") == 2
    assert {run: _record(out, run) for run in ("head", "bitfit")} == first
    assert main([*argv, "--resume", "--extra", "cache_dtype=float32"]) == 2  # the cache's features change: refused
    assert "--extra {} → {'cache_dtype': 'float32'}" in capsys.readouterr().err
