"""Experiment tracking through the Trainer's integrations, and the console a run prints."""

from __future__ import annotations

import contextlib
import io

import pytest

from tunelab import TrainConfig, train
from tunelab.errors import ConfigError
from tunelab.run.tracking import flat_record_metrics
from tunelab.trackers import parse_report_to


def _config(tiny_bert_dir, tmp_path, **kw):
    return TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=2, batch_size=8, out=str(tmp_path / "run"),
                       forgetting=False, **kw)


def test_the_config_checks_its_settings_without_importing_a_layer_above_it():
    """``TrainConfig.problems`` checked ``--report-to`` with the runs' tracking module and ``--base-dtype bf16`` with the
    runs' frozen-layer cache: the config (below the runs) imported upward. Both checks now read modules below it
    (:mod:`tunelab.trackers`, :mod:`tunelab.hardware`), at module level or inside a function alike."""
    import ast
    from pathlib import Path

    import tunelab.config

    tree = ast.parse(Path(tunelab.config.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    above = ("tunelab.run", "tunelab.advice", "tunelab.compare", "tunelab.report", "tunelab.cli")
    assert sorted(m for m in imported if m.startswith(above)) == []
    assert TrainConfig(report_to="tensorbored").problems()[0].startswith("report_to='tensorbored' is not a tracker")


def test_report_to_is_checked_against_the_trainers_integrations(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")  # make setup installs it; a machine without it refuses "mlflow", as it should
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    assert parse_report_to("none") == [] and parse_report_to("tensorboard, mlflow") == ["tensorboard", "mlflow"]
    with pytest.raises(ConfigError, match="not a tracker"):
        parse_report_to("tensorbored")
    # a store MLflow cannot open (as mlflow-skinny's default SQLite one) is refused before anything runs
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unknown-scheme://nowhere")
    with pytest.raises(ConfigError, match=r"report_to='mlflow': MLflow cannot open its tracking store 'unknown-scheme://nowhere'") as caught:
        parse_report_to("mlflow")
    assert "MLFLOW_ALLOW_FILE_STORE" not in str(caught.value)
    # a file store MLflow refuses until allowed: the line names the variable, whatever MLflow's own message holds
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "refused").as_uri())
    try:
        parse_report_to("mlflow")
    except ConfigError as exc:
        assert "set MLFLOW_ALLOW_FILE_STORE=true to log to this folder" in str(exc)


def test_report_to_all_checks_mlflows_store_and_a_name_given_twice_is_one_tracker(monkeypatch):
    """``--report-to all`` skipped the check of MLflow's store: with mlflow-skinny's default (SQLite) store the run
    ended in a traceback (UnsupportedModelRegistryStoreURIException) instead of one line before anything ran. A name
    given twice (``tensorboard,tensorboard``) reached the Trainer twice: two callbacks, every log written twice."""
    pytest.importorskip("mlflow")
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    assert "mlflow" in get_available_reporting_integrations()
    assert parse_report_to("tensorboard,tensorboard, tensorboard") == ["tensorboard"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unknown-scheme://nowhere")
    for value in ("all", "tensorboard,all"):
        with pytest.raises(ConfigError, match="report_to='mlflow': MLflow cannot open its tracking store"):
            parse_report_to(value)
    assert TrainConfig(report_to="all").problems()[0].startswith("report_to='mlflow': MLflow cannot open")


def test_the_final_numbers_reach_tensorboard_whenever_all_names_it(tmp_path, monkeypatch):
    """``--report-to mlflow,all`` gave the Trainer TensorBoard (all installed ones), but tunelab's own final numbers
    (cost, forgetting) went to TensorBoard only for ``all`` alone or a list naming tensorboard."""
    pytest.importorskip("mlflow")
    from tunelab.run.tracking import TENSORBOARD_DIR, log_record

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    log_record("mlflow,all", tmp_path, None, {"train_info": {"steps": 3, "train_time_s": 1.5}})
    assert list((tmp_path / TENSORBOARD_DIR).glob("events.out.tfevents*"))


def test_a_tracking_server_that_is_down_is_asked_once_not_retried_for_minutes(monkeypatch):
    """A walk-through's MLFLOW_TRACKING_URI=http://127.0.0.1:9 took 4 min 14 s to be refused (MLflow's 7 retries with
    backoff, a urllib3 warning each): the store's check asks once, with a short timeout, and says why in full words."""
    import os

    mlflow_client = pytest.importorskip("mlflow.tracking").MlflowClient
    seen = {}

    def down(self, *args, **kwargs):
        seen.update({k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")})
        raise ConnectionError("API request to http://127.0.0.1:9/api/2.0/mlflow/experiments/search failed " + "x " * 400)

    monkeypatch.setattr(mlflow_client, "search_experiments", down)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with pytest.raises(ConfigError) as refused:
        parse_report_to("mlflow")
    assert seen == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the user's settings are back for the runs
    assert "x …); set MLFLOW_TRACKING_URI" in str(refused.value)  # cut at a word, and said to be cut


def test_tensorboard_gets_the_runs_losses(tiny_bert_dir, toy_classification_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    record = train(_config(tiny_bert_dir, tmp_path, report_to="tensorboard"), data=toy_classification_data, progress=False)
    events = list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and any(t.startswith("eval/") for t in tags)
    # and tunelab's final numbers (cost, forgetting), at the run's last step, as MLflow gets them: they went to MLflow alone
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    steps = record["train_info"]["steps"]
    for name in ("test_accuracy", "train_time_s", "peak_memory_mb", "trainable_share"):
        scalars = acc.Scalars(f"tunelab/{name}")
        assert [e.step for e in scalars] == [steps], name
        assert scalars[0].value == pytest.approx(flat_record_metrics(record)[name], rel=1e-6), name


def test_mlflow_gets_the_losses_and_tunelabs_final_numbers(tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    record = train(_config(tiny_bert_dir, tmp_path, report_to="mlflow"), data=toy_classification_data, progress=False)
    runs = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).search_runs(["0"])
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    assert metrics["test_accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert "train_time_s" in metrics and "peak_memory_mb" in metrics and "loss" in metrics
    # the final numbers sit at the run's last step, beside the Trainer's last loss (they were at step 0)
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    steps = record["train_info"]["steps"]
    assert steps > 0
    # once, at that step: the Trainer logs the test split's metrics itself, and tunelab's record did it again
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "test_accuracy")] == [steps]
    assert max(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")) <= steps
    # tunelab's own parameters beside the Trainer's (a comparison's runs had them, a plain train run had none)
    params = runs[0].data.params
    assert params["tunelab.strategy"] == "head" and params["tunelab.model"] == str(tiny_bert_dir)
    assert params["tunelab.data_fingerprint"] == record["meta_info"]["data_fingerprint"]
    assert params["tunelab.data"] == record["meta_info"]["data"] and "tunelab.out" not in params


def test_a_resumed_train_run_goes_on_in_its_mlflow_run(tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    """train --resume of an interrupted run logged into a second MLflow run, the first left KILLED: it continues the
    run it started (its id kept in the run's folder), which ends FINISHED with the final numbers; --overwrite starts
    a new one."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    from tunelab.run import training
    from tunelab.run.resilience import RunInterrupted

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    real = training._final_metrics

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(training, "_final_metrics", stopped)
    config = _config(tiny_bert_dir, tmp_path, report_to="mlflow")
    with pytest.raises(RunInterrupted):
        train(config, data=toy_classification_data, progress=False)
    monkeypatch.setattr(training, "_final_metrics", real)
    record = train(config.replace(resume=True), data=toy_classification_data, progress=False)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(["0"])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("run", "FINISHED")]
    assert runs[0].data.metrics["test_accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    train(config.replace(overwrite=True), data=toy_classification_data, progress=False)
    assert len(client.search_runs(["0"])) == 2


@pytest.mark.parametrize("stopped", ["during training", "after training"])
def test_a_resumed_run_gives_its_trackers_one_training_summary(tiny_bert_dir, toy_classification_data, tmp_path,
                                                                monkeypatch, stopped):
    """The Trainer's summary of a train() call (train_runtime, train_loss, ...) reaches every tracker callback. A run
    stopped by Ctrl-C (which finishes the step, saves and ends train()) and resumed gave the trackers two: the
    stopped part's and the resumed part's; a run stopped after training (in its final evaluation) and resumed from its
    last step's checkpoint, two as well, the second of a call that trained nothing. Now one, from the call that trained
    the last step."""
    import os
    import signal

    from transformers import Trainer
    from transformers.trainer_callback import CallbackHandler

    from tunelab.run import training
    from tunelab.run.resilience import RunInterrupted

    summaries: list[int] = []  # the step of each summary the tracker callbacks were given
    real_on_log, real_step, real_final = CallbackHandler.on_log, Trainer.training_step, training._final_metrics

    def on_log(self, args, state, control, logs):
        if "train_runtime" in logs:
            summaries.append(state.global_step)
        return real_on_log(self, args, state, control, logs)

    def ctrl_c_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # tunelab's handler: this step ends, is saved, training stops
        return real_step(self, *args, **kwargs)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(CallbackHandler, "on_log", on_log)
    if stopped == "during training":
        monkeypatch.setattr(Trainer, "training_step", ctrl_c_at_step_3)
    else:
        monkeypatch.setattr(training, "_final_metrics", ctrl_c)
    config = _config(tiny_bert_dir, tmp_path, save_steps=100)
    with pytest.raises(RunInterrupted):
        train(config, data=toy_classification_data, progress=False)
    monkeypatch.setattr(Trainer, "training_step", real_step)
    monkeypatch.setattr(training, "_final_metrics", real_final)
    record = train(config.replace(resume=True), data=toy_classification_data, progress=False)
    assert summaries == [record["train_info"]["steps"]]


def test_a_run_a_callback_stops_early_gives_its_trackers_its_one_training_summary(tiny_bert_dir, toy_classification_data,
                                                                                  tmp_path, monkeypatch):
    """The summary was dropped whenever training ended before max_steps (meant for Ctrl-C, whose resume sends it): a
    run a callback stops early (control.should_training_stop: early stopping, a time limit) is over, and lost it."""
    from transformers.trainer_callback import CallbackHandler

    summaries: list[int] = []
    real_on_log, real_on_step_end = CallbackHandler.on_log, CallbackHandler.on_step_end

    def on_log(self, args, state, control, logs):
        if "train_runtime" in logs:
            summaries.append(state.global_step)
        return real_on_log(self, args, state, control, logs)

    def stop_at_step_2(self, args, state, control):
        control = real_on_step_end(self, args, state, control)
        if state.global_step == 2:
            control.should_training_stop = True  # as EarlyStoppingCallback does
        return control

    monkeypatch.setattr(CallbackHandler, "on_log", on_log)
    monkeypatch.setattr(CallbackHandler, "on_step_end", stop_at_step_2)
    record = train(_config(tiny_bert_dir, tmp_path), data=toy_classification_data, progress=False)
    assert record["train_info"]["steps"] == 2 and summaries == [2]


def test_off_a_terminal_a_run_prints_one_line_per_epoch_and_no_raw_dicts(tiny_bert_dir, toy_classification_data, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train(_config(tiny_bert_dir, tmp_path), data=toy_classification_data, progress=True)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "validation accuracy" in lines[0]
    assert "{'loss'" not in err.getvalue() and "it/s]" not in err.getvalue()


def _toy_csv(tmp_path):
    import random

    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(60):
        word = rng.choice(["good", "great", "fine"] if i % 2 else ["bad", "dull", "weak"])
        rows.append(f"the film was {word} and the plot {rng.choice(['moved', 'dragged'])},{'pos' if i % 2 else 'neg'}")
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_comparison_is_one_mlflow_parent_with_a_child_per_run(tiny_bert_dir, tmp_path, monkeypatch):
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    from tunelab.compare import compare

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    base = TrainConfig(model=str(tiny_bert_dir), data=str(_toy_csv(tmp_path)), epochs=1, batch_size=8,
                       report_to="mlflow", save_steps=1000)
    result = compare(base, ["head", "bitfit"], out=tmp_path / "cmp", isolate=False, pre_recommend=False, log=None)
    runs = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).search_runs(["0"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.params["tunelab.strategy"] for c in children} == {"head", "bitfit"}
    # what a run logs is decided in one place, for a comparison's runs as for a plain train
    for child in children:
        assert {"tunelab.model", "tunelab.data", "tunelab.data_fingerprint", "tunelab.seed", "tunelab.data_fraction",
                "tunelab.task"} <= set(child.data.params)
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    for child in children:
        assert "test_accuracy" in child.data.metrics and "forgetting_debiased_cka" in child.data.metrics  # tunelab's numbers
        assert "loss" in child.data.metrics  # the Trainer's own logging, in the same run
        # each final number once: the run logged its record, and the comparison logged it again (test_accuracy 3×)
        for name in ("test_accuracy", "train_time_s", "forgetting_debiased_cka", "validation_accuracy"):
            assert len(client.get_metric_history(child.info.run_id, name)) == 1, name
    assert parents[0].data.tags["tunelab.recommended_strategy"] == result.recommendation["strategy"]
    artifacts = {a.path for a in MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).list_artifacts(parents[0].info.run_id)}
    assert {"report.html", "recommendation.json"} <= artifacts  # the verdict for scripts too (and plots/, when drawn)


def test_an_interrupted_comparison_ends_its_mlflow_runs_and_resume_goes_on_in_the_same_parent(
        tiny_bert_dir, tmp_path, monkeypatch):
    """Ctrl-C during bitfit's run: the parent and bitfit's child end KILLED (not left RUNNING), head's child FINISHED.
    compare --resume continues the same parent: head's run is reused with its child, bitfit's child logs again, and
    the experiment holds one parent with one child per run, as if nothing had stopped."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    from tunelab.compare import compare
    from tunelab.run import worker

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    base = TrainConfig(model=str(tiny_bert_dir), data=str(_toy_csv(tmp_path)), epochs=1, batch_size=8,
                       report_to="mlflow", save_steps=1000, forgetting=False)
    real = worker._train

    def ctrl_c_in_bitfit(config, *args, **kwargs):
        if config.strategy == "bitfit":
            raise KeyboardInterrupt("Ctrl-C")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(worker, "_train", ctrl_c_in_bitfit)
    options = dict(out=tmp_path / "cmp", isolate=False, pre_recommend=False, log=None, exhaustive=True)
    with pytest.raises(KeyboardInterrupt):
        compare(base, ["head", "bitfit"], **options)
    client = MlflowClient(tracking_uri=uri)

    def parents_and_children():
        runs = client.search_runs(["0"])
        return ([r for r in runs if "mlflow.parentRunId" not in r.data.tags],
                {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags})

    parents, children = parents_and_children()
    assert [p.info.status for p in parents] == ["KILLED"]
    assert {name: c.info.status for name, c in children.items()} == {"head": "FINISHED", "bitfit": "KILLED"}
    first_parent, head_child = parents[0].info.run_id, children["head"].info.run_id

    monkeypatch.setattr(worker, "_train", real)
    result = compare(base, ["head", "bitfit"], resume=True, **options)
    assert result.reused == ["head"]
    parents, children = parents_and_children()
    assert [(p.info.run_id, p.info.status) for p in parents] == [(first_parent, "FINISHED")]
    assert {name: c.info.status for name, c in children.items()} == {"head": "FINISHED", "bitfit": "FINISHED"}
    assert children["head"].info.run_id == head_child
    assert "test_accuracy" in children["bitfit"].data.metrics
    assert {c.data.tags["mlflow.parentRunId"] for c in children.values()} == {first_parent}


def test_a_run_stopped_with_a_checkpoint_ends_its_child_killed_and_a_failed_one_failed(tmp_path, monkeypatch):
    """A run interrupted by Ctrl-C (the worker alone got it) or by the budget kept a checkpoint and resumes: its child
    ends KILLED, like the runs of an interrupted comparison; a run that failed ends FAILED."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    from tunelab.compare.executors import BUDGET_STOP
    from tunelab.compare.tracking import ComparisonRuns
    from tunelab.run.worker import INTERRUPTED

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runs = ComparisonRuns("cmp", {}, tmp_path)
    for name, error in (("ctrl-c", INTERRUPTED + "Ctrl-C"), ("budget", BUDGET_STOP + " (3 s into the run)"),
                        ("broken", "ValueError: bad")):
        runs.child_environment(name)
        runs.finish_child(name, {"run_info": {"status": "failed", "error": error}})
    statuses = {r.info.run_name: r.info.status for r in MlflowClient(tracking_uri=uri).search_runs(["0"])}
    assert statuses == {"cmp": "RUNNING", "ctrl-c": "KILLED", "budget": "KILLED", "broken": "FAILED"}


def test_max_forgetting_sets_aside_strategies_that_forgot_more(tiny_bert_dir, tmp_path):
    from tunelab.advice.choose import recommend_from_results
    from tunelab.compare import compare

    base = TrainConfig(model=str(tiny_bert_dir), data=str(_toy_csv(tmp_path)), epochs=2, batch_size=8, save_steps=1000)
    result = compare(base, ["head", "full"], out=tmp_path / "cmp", isolate=False, pre_recommend=False, log=None,
                     lr_overrides={"full": 3e-2})
    forgot = {r.run_info.strategy: r.train_info.forgetting["value"] for r in result.results}
    assert forgot["head"] == pytest.approx(0.0, abs=1e-6) and forgot["full"] > 0
    limited = recommend_from_results(result.results, max_forgetting=forgot["full"] / 2)
    assert limited["strategy"] == "head"
    full = next(r for r in limited["ranking"] if r["strategy"] == "full")
    assert "--max-forgetting" in (full["why_not"] or "")


def test_a_run_writes_its_progress_for_watchers_and_compare_reads_it_with_an_eta(
    tiny_bert_dir, toy_classification_data, tmp_path
):
    from types import SimpleNamespace

    from tunelab.compare.progress import CompareDisplay
    from tunelab.io import write_json
    from tunelab.run.progress import read_progress

    train(_config(tiny_bert_dir, tmp_path), data=toy_classification_data, progress=False)
    state = read_progress(tmp_path / "run")
    assert state["phase"] == "done" and state["step"] == state["max_steps"] > 0  # it kept "evaluating" for good

    lines: list[str] = []
    jobs = [SimpleNamespace(run_id=f"r{i}", folder=tmp_path / f"r{i}", spec={"config": {"strategy": s}})
            for i, s in enumerate(["head", "full", "head"])]
    display = CompareDisplay(jobs, lambda j: j.spec["config"]["strategy"], lines.append, estimates={"full": 100.0})
    display.start(jobs[0])
    display.done(jobs[0], seconds=10.0)
    assert display.eta() == pytest.approx(100.0 + 10.0)  # full from the estimate, head from what was measured
    display.start(jobs[1])
    (tmp_path / "r1").mkdir()
    write_json(tmp_path / "r1" / "progress.json", {"phase": "training", "step": 5, "max_steps": 10, "epoch": 1.0, "loss": 0.5})
    display.progress(jobs[1])
    assert lines and "epoch 1, step 5/10" in lines[-1] and "loss 0.5000" in lines[-1] and "ETA" in lines[-1]


def test_an_interrupted_train_run_ends_its_mlflow_run_killed_and_a_failed_one_failed(
        tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) stops a run with a checkpoint that --resume continues: its MLflow run ends KILLED, as a
    comparison's interrupted children do, not FAILED like a run that broke."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    from tunelab.run import training
    from tunelab.run.resilience import RunInterrupted

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(training, "_final_metrics", stopped)
    with pytest.raises(RunInterrupted):
        train(_config(tiny_bert_dir, tmp_path, report_to="mlflow"), data=toy_classification_data, progress=False)

    def broken(*args, **kwargs):
        raise ValueError("broken")

    monkeypatch.setattr(training, "_final_metrics", broken)
    with pytest.raises(ValueError):
        train(_config(tiny_bert_dir, tmp_path, report_to="mlflow").replace(out=str(tmp_path / "other")),
              data=toy_classification_data, progress=False)
    statuses = {r.info.run_name: r.info.status for r in MlflowClient(tracking_uri=uri).search_runs(["0"])}
    assert statuses == {"run": "KILLED", "other": "FAILED"}


def test_a_reused_runs_child_logs_the_numbers_the_comparisons_table_shows(tmp_path, monkeypatch):
    """A run recorded before macro F1 averaged the split's gold classes, reused by ``compare --resume`` into an MLflow
    parent that did not hold it: its child got the f1_macro its metrics.json recorded (scikit-learn's default, over
    the gold or predicted classes) while the table, the ranking and results.csv state its saved outputs' value. The
    child now holds the table's value, and the recorded one as ``recorded_validation_f1_macro`` (results.csv's
    ``metrics.recorded.validation.f1_macro``)."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient
    import numpy as np
    from sklearn.metrics import f1_score

    from tunelab.advice.verdict import run_value
    from tunelab.compare.tracking import ComparisonRuns
    from tunelab.run.outputs import ExampleOutputs
    from tunelab.run.record import as_record
    from tunelab.run.tracking import log_record_to_mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    pred = y.copy()
    pred[np.flatnonzero(y == 0)[:10]] = 2  # "meh": predicted, but no validation example is one
    folder = tmp_path / "lora-s0"
    outputs = ExampleOutputs(labels=y, predictions=pred, label_names=["neg", "pos", "meh"])
    metrics = {}
    for split in ("validation", "test"):
        outputs.save(folder, split)
        metrics[split] = {**outputs.metrics(), "f1_macro": float(f1_score(y, pred, average="macro"))}
    record = {"run_info": {"run_id": "lora-s0", "strategy": "lora", "seed": 0, "status": "success"},
              "train_info": {"train_time_s": 5.0, "steps": 7}, "metrics": metrics,
              "meta_info": {"task": "classification", "label_names": ["neg", "pos", "meh"]},
              "config": {"strategy": "lora", "seed": 0, "out": str(folder)}}
    today, old = run_value(as_record(record), "validation", "f1_macro"), metrics["validation"]["f1_macro"]
    assert old < today - 0.2

    ComparisonRuns("cmp", {}, tmp_path).reused("lora-s0", record)
    (child,) = [r for r in MlflowClient(tracking_uri=uri).search_runs(["0"]) if r.info.run_name == "lora-s0"]
    assert child.data.metrics["validation_f1_macro"] == pytest.approx(today)
    assert child.data.metrics["test_f1_macro"] == pytest.approx(today)
    assert child.data.metrics["recorded_validation_f1_macro"] == pytest.approx(old)
    assert child.data.metrics["validation_accuracy"] == metrics["validation"]["accuracy"]  # as recorded: no recorded_*
    assert "recorded_validation_accuracy" not in child.data.metrics

    # a child an older tunelab filled with the recorded value gets today's when the comparison is resumed
    earlier = ComparisonRuns("old", {}, tmp_path / "old")
    earlier.child_environment("lora-s0")
    log_record_to_mlflow(earlier.children["lora-s0"], record)
    ComparisonRuns("old", {}, tmp_path / "old", resume=True).reused("lora-s0", record)
    metrics = MlflowClient(tracking_uri=uri).get_run(earlier.children["lora-s0"]).data.metrics
    assert metrics["validation_f1_macro"] == pytest.approx(today) and metrics["recorded_validation_f1_macro"] == old


def test_a_fresh_causal_lm_runs_child_holds_one_point_per_metric_at_its_last_step(tmp_path, monkeypatch):
    """A causal LM's run logs its perplexity from float32 sums of its losses; the comparison states it from the saved
    outputs, summed in float64 (the 8th digit apart: the same measurement, :func:`tunelab.metrics.same_measurement`).
    The comparison logged its value to the child after the run's own: ``validation_perplexity`` held (7, 47825.9799)
    and (7, 47825.9313). It now logs only what is another measurement (a value recorded under an older definition,
    with the recorded one as ``recorded_<split>_<metric>``) or was not recorded at all."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient
    import math

    import numpy as np

    from tunelab.advice.verdict import outputs_scores
    from tunelab.compare.tracking import ComparisonRuns
    from tunelab.run.outputs import ExampleOutputs
    from tunelab.run.record import as_record
    from tunelab.run.tracking import log_record_to_mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rng = np.random.default_rng(0)
    folder = tmp_path / "lora-s0"
    for split in ("validation", "test"):
        ExampleOutputs(loss_sums=rng.uniform(300.0, 340.0, 30), token_counts=np.full(30, 30.0)).save(folder, split)
    record = {"run_info": {"run_id": "lora-s0", "strategy": "lora", "seed": 0, "status": "success"},
              "train_info": {"train_time_s": 5.0, "steps": 7}, "metrics": {},
              "meta_info": {"task": "causal-lm"}, "config": {"strategy": "lora", "seed": 0, "out": str(folder)}}
    for split in ("validation", "test"):  # as the run recorded them: its loss summed in float32
        exact = outputs_scores(as_record(record), split)
        loss = exact["loss"] * (1 + 3e-8)
        record["metrics"][split] = {"loss": loss, "perplexity": math.exp(loss)}
        assert not math.isclose(exact["perplexity"], math.exp(loss), rel_tol=1e-9)  # two points, were both logged
    client = MlflowClient(tracking_uri=uri)

    runs = ComparisonRuns("cmp", {}, tmp_path)
    runs.child_environment("lora-s0")
    log_record_to_mlflow(runs.children["lora-s0"], record)  # the run's own, at the end of its training
    runs.finish_child("lora-s0", record)
    for split in ("validation", "test"):
        for metric in ("loss", "perplexity"):
            history = client.get_metric_history(runs.children["lora-s0"], f"{split}_{metric}")
            assert [(m.step, m.value) for m in history] == [(7, record["metrics"][split][metric])]
    assert not [m for m in client.get_run(runs.children["lora-s0"]).data.metrics if m.startswith("recorded_")]

    # a run recorded under another definition still gets today's value beside its recorded one
    older = {**record, "metrics": {**record["metrics"], "validation": {"loss": 9.0, "perplexity": math.exp(9.0)}}}
    resumed = ComparisonRuns("cmp", {}, tmp_path, resume=True)
    resumed.reused("lora-s0", older)
    today = outputs_scores(as_record(record), "validation")["perplexity"]
    history = client.get_metric_history(runs.children["lora-s0"], "validation_perplexity")
    assert [m.value for m in history][-1] == pytest.approx(today)
    assert client.get_run(runs.children["lora-s0"]).data.metrics["recorded_validation_perplexity"] == math.exp(9.0)


def test_in_rounds_the_eta_line_names_the_round_it_covers(tmp_path):
    """A planned comparison hands the display one round's runs at a time: its ETA is that round's, and the line said
    "comparison ETA 0 s" at round 1's last run with two rounds still to come."""
    from types import SimpleNamespace

    from tunelab.compare.progress import CompareDisplay
    from tunelab.io import write_json

    job = SimpleNamespace(run_id="full-f0.111", folder=tmp_path / "r", spec={"config": {"strategy": "full"}})
    (tmp_path / "r").mkdir()
    write_json(tmp_path / "r" / "progress.json", {"phase": "training", "step": 12, "max_steps": 12, "epoch": 1.0})
    lines: list[str] = []
    display = CompareDisplay([job], lambda j: j.spec["config"]["strategy"], lines.append, scope="round 1")
    display.start(job)
    display.progress(job)
    assert "; round 1 ETA " in lines[-1] and "comparison ETA" not in lines[-1]
    whole = CompareDisplay([job], lambda j: j.spec["config"]["strategy"], lines.append)
    whole.start(job)
    whole.progress(job)
    assert "; comparison ETA " in lines[-1]


def test_forgetting_reaches_the_trackers_under_a_name_that_says_its_estimator(tmp_path, monkeypatch):
    """Forgetting went to MLflow and TensorBoard as plain ``forgetting``: a run recorded with the biased CKA estimator
    (no ``estimator`` in its record) and a debiased one sat on one axis on different scales. Each is now named by its
    unit, as :func:`tunelab.run.forgetting.unit_of` reads the record."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tunelab.run.tracking import TENSORBOARD_DIR, log_record

    old = {"value": 0.3, "measure": "representation_drift", "unit": "1 - linear CKA"}
    new = {"value": 0.02, "measure": "representation_drift", "unit": "1 - debiased linear CKA", "estimator": "debiased"}
    lm = {"value": -0.1, "measure": "lm_loss_change", "unit": "nats/token"}
    assert {name for found in (old, new, lm) for name in flat_record_metrics({"train_info": {"forgetting": found}})} \
        == {"forgetting_biased_cka", "forgetting_debiased_cka", "forgetting_lm_loss_change"}

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri)
    for name, found in (("old", old), ("new", new)):
        run_id = client.create_run("0").info.run_id  # one experiment: MLflow's default
        log_record("mlflow,tensorboard", tmp_path / name, run_id, {"train_info": {"steps": 2, "forgetting": found}})
        metrics = client.get_run(run_id).data.metrics
        assert "forgetting" not in metrics, metrics
        acc = EventAccumulator(str(tmp_path / name / TENSORBOARD_DIR))
        acc.Reload()
        tags = [t for t in acc.Tags()["scalars"] if "forgetting" in t]
        estimator = "biased" if name == "old" else "debiased"
        assert metrics == {f"forgetting_{estimator}_cka": found["value"]} and tags == [f"tunelab/forgetting_{estimator}_cka"]
