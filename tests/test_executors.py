"""``compare``'s executors: the Ray one against the local one, a killed run, resume, and Ray missing.

The Ray tests start a local cluster of 2 CPUs (two runs at once, one CPU each) and skip when Ray is
not installed (``pip install 'tunelab[ray]'``). Measured on 2 CPU cores: about 55 s together (the
cluster starts in ~9 s; every run trains in a fresh process), more when the cores are busy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tunelab.compare.executors import Job, LocalExecutor, make_executor
from tunelab.compare.runner import compare
from tunelab.config import TrainConfig
from tunelab.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory) -> Path:
    import csv
    import random

    from conftest import _NEGATIVE, _POSITIVE, _sentence

    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(64):
            writer.writerow([_sentence(rng, _POSITIVE if i % 2 else _NEGATIVE), "pos" if i % 2 else "neg"])
    return path


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}})
    yield ray
    ray.shutdown()


def _base(model: Path, data: Path) -> TrainConfig:
    return TrainConfig(model=str(model), data=str(data), epochs=1, batch_size=8, save_steps=1000, lr=1e-3)


def _same(record, other) -> dict:
    """The parts of a record that do not depend on timing or on where the run was placed."""
    ti = record.train_info
    config = {k: v for k, v in record.config.items() if k != "out"}
    return {"status": record.run_info.status, "metrics": record.metrics.to_dict(), "config": config,
            "epochs": ti.epochs, "trainable": ti.trainable_params, "n_train": record.meta_info.n_train}


def test_ray_comparison_gives_the_local_records(ray_cluster, tiny_bert_dir, toy_csv, tmp_path):
    """Two strategies as Ray tasks (concurrently, one CPU each) give the records of the local executor."""
    from tunelab.compare.executors import RayExecutor

    base = _base(tiny_bert_dir, toy_csv)
    kwargs = dict(pre_recommend=False, log=None)
    on_ray = compare(base, ["head", "lora"], out=tmp_path / "ray", executor=RayExecutor(run_cpus=1), **kwargs)
    local = compare(base, ["head", "lora"], out=tmp_path / "local", isolate=False, **kwargs)  # same code, in-process
    assert [r.run_info.status for r in on_ray.results] == ["success", "success"]
    for a, b in zip(on_ray.results, local.results):
        assert _same(a, b) == _same(b, a)
    assert (tmp_path / "ray" / "runs" / "lora" / "model" / "tunelab.json").is_file()
    # Which contender is cheapest is a matter of measured training time, which Ray's concurrent runs on
    # one CPU each (and a busy machine) change; the contenders do not, and each side picks its own cheapest.
    assert sorted(on_ray.recommendation["contenders"]) == sorted(local.recommendation["contenders"])
    for rec in (on_ray.recommendation, local.recommendation):
        times = {row["strategy"]: row["train_time_s"] for row in rec["ranking"]}
        assert rec["strategy"] == min(rec["contenders"], key=times.__getitem__)


def _kill_when_started(folder: Path, stop: threading.Event) -> None:
    """SIGKILL the worker process training the run in ``folder`` as soon as it appears."""
    import psutil

    spec = str(folder / "spec.json")
    while not stop.is_set():
        for proc in psutil.process_iter(["cmdline"]):
            if spec in (proc.info["cmdline"] or []):
                os.kill(proc.pid, signal.SIGKILL)
                return
        time.sleep(0.05)


def test_run_killed_on_a_worker_is_failed_the_other_finishes_and_resume_retrains_it(
        ray_cluster, tiny_bert_dir, toy_csv, tmp_path):
    from tunelab.compare.executors import RayExecutor

    base, out = _base(tiny_bert_dir, toy_csv), tmp_path / "cmp"
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_started, args=(out / "runs" / "lora", stop), daemon=True)
    killer.start()
    try:
        first = compare(base, ["head", "lora"], out=out, executor=RayExecutor(), pre_recommend=False, log=None)
    finally:
        stop.set()
    head, lora = first.results
    assert head.succeeded
    assert not lora.succeeded and "SIGKILL" in lora.run_info.error
    again = compare(base, ["head", "lora"], out=out, executor=RayExecutor(), resume=True, pre_recommend=False, log=None)
    assert again.reused == ["head"] and all(r.succeeded for r in again.results)


def test_executor_choice_and_ray_missing(monkeypatch, tmp_path, capsys):
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ConfigError, match="--executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(ConfigError, match="^--run-cpus applies to Ray's tasks, not to local runs"):
        make_executor("local", run_cpus=0)  # a value given for nothing was not even checked
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'tunelab\[ray\]'"):
        make_executor("ray")
    from tunelab.cli.main import main

    assert main(["compare", "--executor", "ray", "--out", str(tmp_path / "x"), "--no-pre-recommendation"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tunelab: error: --executor ray needs Ray")
    assert not (tmp_path / "x").exists()


def test_local_executor_keeps_order_and_reports_each_run(tmp_path):
    """Failed specs come back as failed records, in the jobs' order, each reported once."""
    bad = {"config": {"model": "nope", "out": str(tmp_path / "a")}}
    jobs = [Job("a", bad, tmp_path / "a"), Job("b", {**bad, "config": {**bad["config"], "out": str(tmp_path / "b")}},
                                                tmp_path / "b")]
    seen: list[str] = []
    records = LocalExecutor(isolate=False).run(jobs, on_start=lambda j: seen.append("start " + j.run_id),
                                               on_done=lambda j, r: seen.append("done " + j.run_id))
    assert seen == ["start a", "done a", "start b", "done b"]
    assert [r.run_info.status for r in records] == ["failed", "failed"]
    assert all((tmp_path / n / "metrics.json").is_file() for n in "ab")
