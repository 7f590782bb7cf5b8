"""The typed run record (JSON round trip, old records, failures) and jobs in a fresh process."""

from __future__ import annotations

import json
import textwrap

import pytest

from tunelab.errors import DataError
from tunelab.io import atomic_dir, atomic_write_text
from tunelab.run.isolate import raise_child_error, run_job
from tunelab.run.record import RunRecord, TrainInfo


def _success_json() -> dict:
    return {
        "run_info": {"run_id": "lora", "strategy": "lora", "seed": 42, "data_fraction": 1.0, "status": "success",
                     "error": None, "started_at": "2025-01-01T00:00:00+00:00", "wall_time_s": 12.5,
                     "split_seed": 42, "cpu_time_s": 20.1},
        "train_info": {"train_time_s": 10.0, "peak_memory_mb": 900.0, "memory_kind": "rss", "trainable_params": 10,
                       "total_params": 100, "epochs": [{"epoch": 1, "train_loss": 0.5}], "notes": []},
        "metrics": {"validation": {"accuracy": 0.8}, "test": {"accuracy": 0.75, "loss": 0.5}},
        "meta_info": {"model": "m", "task": "classification", "data": "d", "n_train": 48, "label_names": ["a", "b"]},
        "config": {"strategy": "lora", "seed": 42},
        "artifact": {"path": "runs/lora/model", "format": "peft", "size_mb": 1.5},
        "lr_search": {"chosen_lr": 0.001},
    }  # fmt: skip


def test_a_record_reads_back_to_the_same_json_with_typed_fields():
    data = _success_json()
    record = RunRecord.from_dict(json.loads(json.dumps(data)))
    assert record.to_dict() == data and list(record.to_dict()["run_info"]) == list(data["run_info"])
    assert record.succeeded and record.task == "classification"
    assert record.metrics.value("test", "accuracy") == 0.75 and record.metrics.value("test", "f1_macro") is None
    assert record.train_info.epochs[0]["train_loss"] == 0.5 and record.artifact.format == "peft"
    assert record.extra == {"lr_search": {"chosen_lr": 0.001}}
    assert record["metrics"]["test"]["accuracy"] == 0.75 and record == data  # reads like its dict


def test_old_or_partial_records_read_with_missing_parts_empty_and_unknown_keys_kept():
    record = RunRecord.from_dict({"run_info": {"status": "success", "gpu": "none"}, "train_info": {"flops": 3}})
    assert record.succeeded and record.run_info.strategy is None and record.run_info.data_fraction == 1.0
    assert record.metrics.value("test", "accuracy") is None and record.artifact is None and record.config == {}
    assert record.to_dict()["run_info"]["gpu"] == "none" and record.to_dict()["train_info"] == {"flops": 3}
    assert TrainInfo.from_dict(None).to_dict() == {}


def test_a_failure_has_every_section_and_merges_what_the_caller_adds(tmp_path):
    config = {"out": str(tmp_path / "runs" / "full"), "strategy": "full", "seed": 7, "model": "m", "data": "d"}
    record = RunRecord.failure(config, "out of memory", wall_time_s=1.23456, extra={"lr_search": {"all_failed": True}})
    record.write(tmp_path / "metrics.json")
    back = RunRecord.read(tmp_path / "metrics.json")
    assert not back.succeeded and back.run_info.error == "out of memory" and back.run_info.run_id == "full"
    assert back.run_info.wall_time_s == 1.235 and back.meta_info.model == "m" and back.config == config
    assert back.to_dict()["train_info"] == {} and back.to_dict()["artifact"] is None
    assert back.extra["lr_search"] == {"all_failed": True}


def test_atomic_writes_leave_the_old_content_when_writing_fails(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")
    target = tmp_path / "folder"
    with atomic_dir(target, marker=False) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "x").write_text("2")
        raise RuntimeError("boom")
    assert (target / "x").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "folder"]


_JOB = textwrap.dedent(
    """
    import os, signal, sys
    from tunelab.errors import DataError
    from tunelab.run.isolate import serve

    def handle(spec):
        if spec["do"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if spec["do"] == "raise":
            raise DataError("column 'text' is missing: name it with --text-column")
        return {"doubled": spec["value"] * 2}

    sys.exit(serve(handle))
    """
)


def test_a_job_in_a_fresh_process_returns_its_result_or_says_why_not(tmp_path, monkeypatch):
    (tmp_path / "toy_job.py").write_text(_JOB)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    done = run_job("toy_job", {"do": "double", "value": 21}, tmp_path / "ok")
    assert done.result == {"doubled": 42} and done.returncode == 0 and done.error is None

    killed = run_job("toy_job", {"do": "kill"}, tmp_path / "killed", what="the toy job")
    assert killed.result is None and killed.returncode == -9
    assert killed.error.startswith("the toy job was killed by SIGKILL") and "out-of-memory killer" in killed.error

    failed = run_job("toy_job", {"do": "raise"}, tmp_path / "failed")
    assert failed.returncode == 1 and failed.child_error["type"] == "DataError"
    with pytest.raises(DataError, match="--text-column"):
        raise_child_error(failed.child_error)


def test_a_record_read_from_a_moved_folder_finds_its_outputs_beside_it(tmp_path):
    """A comparison folder moved or copied after training (another machine, a repository) keeps its paired
    verdicts: the record read from disk points at the folder it lies in, not where the run trained."""
    import numpy as np

    from tunelab.advice.verdict import run_outputs
    from tunelab.run.outputs import ExampleOutputs

    trained = tmp_path / "then" / "full"
    record = RunRecord.from_dict({"run_info": {"strategy": "full", "status": "success"}, "config": {"out": str(trained)}})
    record.write(trained / "metrics.json")
    ExampleOutputs(labels=np.array([0, 1, 1]), predictions=np.array([0, 1, 0])).save(trained, "validation")
    moved = tmp_path / "now" / "full"
    moved.parent.mkdir()
    trained.rename(moved)
    again = RunRecord.read(moved / "metrics.json")
    assert again.config["out"] == str(moved.resolve())
    outputs = run_outputs(again, "validation")
    assert outputs is not None and list(outputs.predictions) == [0, 1, 0]
