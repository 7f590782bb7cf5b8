"""Experiment tracking through the Trainer's integrations, and the console a run prints."""

from __future__ import annotations

import contextlib
import io

import pytest

from tunelab import TrainConfig, train
from tunelab.errors import ConfigError
from tunelab.run.tracking import parse_report_to


def _config(tiny_bert_dir, tmp_path, **kw):
    return TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=2, batch_size=8, out=str(tmp_path / "run"),
                       forgetting=False, **kw)


def test_report_to_is_checked_against_the_trainers_integrations():
    assert parse_report_to("none") == [] and parse_report_to("tensorboard, mlflow") == ["tensorboard", "mlflow"]
    with pytest.raises(ConfigError, match="not a tracker"):
        parse_report_to("tensorbored")


def test_tensorboard_gets_the_runs_losses(tiny_bert_dir, toy_classification_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_config(tiny_bert_dir, tmp_path, report_to="tensorboard"), data=toy_classification_data, progress=False)
    events = list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and any(t.startswith("eval/") for t in tags)


def test_mlflow_gets_the_losses_and_tunelabs_final_numbers(tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    record = train(_config(tiny_bert_dir, tmp_path, report_to="mlflow"), data=toy_classification_data, progress=False)
    runs = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).search_runs(["0"])
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    assert metrics["test_accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert "train_time_s" in metrics and "peak_memory_mb" in metrics and "loss" in metrics


def test_off_a_terminal_a_run_prints_one_line_per_epoch_and_no_raw_dicts(tiny_bert_dir, toy_classification_data, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train(_config(tiny_bert_dir, tmp_path), data=toy_classification_data, progress=True)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "validation accuracy" in lines[0]
    assert "{'loss'" not in err.getvalue() and "it/s]" not in err.getvalue()
