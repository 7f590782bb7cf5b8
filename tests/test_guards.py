"""Guards: non-finite loss / gradient stop the run (keeping the last good checkpoint), a run that changed
no weight is an error, out-of-memory lowers the batch and keeps the effective batch, and pickled weight
files are refused unless ``torch.load(weights_only=True)`` accepts them. Tiny BERT from a config."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import pytest
import torch

import tunelab.run.training as training
from test_resume import make_tiny  # the same tiny BERT + two-class CSV
from tunelab.config import TrainConfig
from tunelab.errors import ModelError, TrainingError, TunelabError
from tunelab.io import MARKER
from tunelab.run import resilience
from tunelab.run.artifacts import load_artifact
from tunelab.run.training import train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("tiny"))


def config(tiny, out: Path, **changes) -> TrainConfig:
    model, data = tiny
    values = dict(
        model=str(model), data=str(data), strategy="full", epochs=1, batch_size=8, lr=1e-3, out=str(out)
    )
    values.update(changes)
    return TrainConfig(**values)


def test_huge_learning_rate_stops_with_step_and_cause(tiny, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(
        TrainingError, match=r"non-finite (loss|gradient).* at step \d+: the learning rate \(1e\+06\)"
    ):
        train(config(tiny, out, lr=1e6, epochs=2), progress=False)
    assert not (out / "metrics.json").exists() and not (out / "model").exists()


def test_nan_gradient_stops_before_the_optimizer_step_and_keeps_last_checkpoint(tiny, tmp_path, monkeypatch):
    real_load = training.load_model
    backward_calls = {"n": 0}
    seen_weights: dict[str, torch.Tensor] = {}

    def poisoned(*args, **kwargs):
        model, tokenizer = real_load(*args, **kwargs)

        def hook(grad):
            backward_calls["n"] += 1
            return grad * float("nan") if backward_calls["n"] == 3 else grad  # third optimizer step

        model.classifier.weight.register_hook(hook)
        seen_weights["model"] = model.classifier.weight
        return model, tokenizer

    monkeypatch.setattr(training, "load_model", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        train(config(tiny, out, save_steps=2), progress=False)
    message = str(info.value)
    # clipping spreads the NaN to every gradient, so the first parameter is named
    assert re.search(r"non-finite gradient in [\w.]+ at step 3: the learning rate", message), message
    assert "checkpoint-2" in message and "--resume" in message
    assert torch.isfinite(seen_weights["model"]).all()  # the NaN never reached the weights
    kept = resilience.last_complete_checkpoint(out / "checkpoints")
    assert kept is not None and kept.name == "checkpoint-2" and (kept / "model.safetensors").is_file()


def test_a_run_that_changed_no_weight_is_an_error(tiny, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="no trainable weight changed"):
        train(config(tiny, out, lr=1e-46, head_lr=1e-46, save_steps=100), progress=False)  # below float32: updates vanish
    assert not (out / "metrics.json").exists()


def test_out_of_memory_halves_the_batch_and_keeps_the_effective_batch(tiny, tmp_path, monkeypatch):
    from transformers import Trainer

    real_step = Trainer.training_step
    seen_sizes: list[int] = []

    def fake_oom(self, model, inputs, num_items_in_batch=None):
        size = int(inputs["input_ids"].shape[0])
        seen_sizes.append(size)
        if size > 4:
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes (fake)"
            )
        return real_step(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(Trainer, "training_step", fake_oom)
    # the batch whole: cut into micro-batches (tunelab.run.padding), the first step would reach Trainer's at 8 rows
    monkeypatch.setattr("tunelab.run.padding.split_by_padding", lambda inputs, **kwargs: None)
    record = train(config(tiny, tmp_path / "run", batch_size=16, save_steps=100), progress=False)
    info = record["train_info"]
    assert seen_sizes[:2] == [16, 8] and max(seen_sizes[2:]) <= 4
    assert info["batch_size"] == 4 and info["gradient_accumulation_steps"] == 4
    assert any("out of memory at batch size 16" in n and "effective batch 16" in n for n in info["notes"])
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["train_info"]["batch_size"] == 4


def test_a_batch_retried_after_out_of_memory_holds_no_larger_micro_batch(tiny, tmp_path, monkeypatch):
    """After running out of memory the batch is halved and the accumulation doubled; --micro-batch-tokens cut batches
    only without accumulation, so the retry's halves of 16 rows went whole: twice the padded tokens of the micro-batches
    of 8 rows that ran before. Now the cap cuts the accumulated batches too: no retried micro-batch is larger."""
    from transformers import Trainer

    real_step = Trainer.training_step
    tokens: dict[str, list[int]] = {"before": [], "after": []}  # each micro-batch's rows x padded length
    raised: list[bool] = []

    def fake_oom(self, model, inputs, num_items_in_batch=None):
        if not raised and self.state.global_step >= 1:  # the first attempt's second batch runs out of memory
            raised.append(True)
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes (fake)")
        tokens["after" if raised else "before"].append(int(inputs["attention_mask"].numel()))
        return real_step(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(Trainer, "training_step", fake_oom)
    record = train(config(tiny, tmp_path / "run", batch_size=32, micro_batch_tokens=64, save_steps=100), progress=False)
    info = record["train_info"]
    assert info["batch_size"] == 16 and info["gradient_accumulation_steps"] == 2
    before, after = tokens["before"], tokens["after"]
    assert len(before) >= 2 and after  # the first batch of 32 was cut into micro-batches
    assert max(after) <= max(before), tokens


def test_out_of_memory_is_not_retried_when_the_search_is_off(tiny, tmp_path, monkeypatch):
    from transformers import Trainer

    def always_oom(self, model, inputs, num_items_in_batch=None):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes (fake)")

    monkeypatch.setattr(Trainer, "training_step", always_oom)
    with pytest.raises(RuntimeError, match="DefaultCPUAllocator"):
        train(config(tiny, tmp_path / "a", auto_batch_size=False), progress=False)
    with pytest.raises(TrainingError, match="out of memory even at batch size 1"):
        train(config(tiny, tmp_path / "b", batch_size=2), progress=False)


def _fake_fit_parts(config):
    """A TrainerSetup and a Trainer stand-in, enough for ``training._fit`` to run one (instant) training."""
    from types import SimpleNamespace

    strategy = SimpleNamespace(steps_note=lambda *args: None)
    setup = SimpleNamespace(run=SimpleNamespace(config=config, strategy=strategy, layout=None),
                            attention=lambda: contextlib.nullcontext(False), restart=lambda trainer: None,
                            initial=SimpleNamespace(discard=lambda: None))
    trainer = SimpleNamespace(add_callback=lambda callback: None, args=SimpleNamespace(), eval_seconds=0.0,
                              state=SimpleNamespace(global_step=1, max_steps=1),
                              train=lambda resume_from_checkpoint=None: None)
    return setup, trainer


def test_batch_search_off_across_processes_is_recorded_not_warned(tmp_path, monkeypatch, caplog):
    """Under torchrun / accelerate launch every run warned "out-of-memory batch search off: ..." though the search is
    on by default and nobody asked for it: the fact stays in the run's notes, and is no warning."""
    monkeypatch.setattr(training.ranks, "distributed", lambda: True)
    cfg = TrainConfig(model="m", data="d", strategy="full", out=str(tmp_path))
    with caplog.at_level("WARNING", logger="tunelab"):
        fit = training._fit(*_fake_fit_parts(cfg), tmp_path, None)
    assert any(n.startswith("out-of-memory batch search off") for n in fit.notes)
    assert not [r for r in caplog.records if "batch search" in r.getMessage()]
    monkeypatch.setattr(training.ranks, "distributed", lambda: False)  # one process: the search runs, nothing to note
    assert training.batch_search_off(cfg) is None


def test_batch_search_off_is_said_where_auto_batch_size_was_typed(tiny, tmp_path, monkeypatch, caplog):
    """``--auto-batch-size`` typed under a launcher, which turns the search off: one warning, from the first process."""
    from tunelab.cli.main import main

    monkeypatch.setattr(training.ranks, "distributed", lambda: True)
    monkeypatch.setattr(training.ranks, "is_main", lambda: False)  # the main process would print the record
    monkeypatch.setattr(training, "train", lambda config, progress=True: {})
    monkeypatch.setattr(training.ranks, "shut_down_at_exit", lambda: None)  # no process group to end at exit
    model, data = tiny
    said = []
    for typed in ([], ["--auto-batch-size"]):
        caplog.clear()
        with caplog.at_level("WARNING", logger="tunelab"):
            assert main(["-q", "train", "--model", str(model), "--data", str(data), "--strategy", "full", *typed]) == 0
        said.append([r.getMessage() for r in caplog.records if "batch search" in r.getMessage()])
    assert said[0] == [] and len(said[1]) == 1 and said[1][0].startswith("--auto-batch-size: out-of-memory batch search off")


def test_micro_batch_tokens_typed_where_no_batch_is_cut_is_said(tiny, tmp_path, monkeypatch, caplog):
    """``--micro-batch-tokens 64`` on a GPU: the cap cuts no batch there (the trainer's training_step), and the run
    said nothing. Now one warning where the cap was typed; none by default (the README says where the cap applies) and
    none where it applies (a CPU, with or without gradient accumulation)."""
    from tunelab import hardware
    from tunelab.cli.main import main

    monkeypatch.setattr(training, "train", lambda config, progress=True: {})
    monkeypatch.setattr(training.ranks, "is_main", lambda: False)  # the main process would print the record
    model, data = tiny
    said = []
    for flags in ([], ["--micro-batch-tokens", "64"]):
        for device, steps in (("cpu", "1"), ("cpu", "2"), ("cuda", "1")):
            monkeypatch.setattr(hardware, "build_device", lambda device=device: torch.device(device))
            caplog.clear()
            with caplog.at_level("WARNING", logger="tunelab"):
                assert main(["-q", "train", "--model", str(model), "--data", str(data), "--strategy", "full",
                             "--gradient-accumulation-steps", steps, *flags]) == 0
            said.append([r.getMessage() for r in caplog.records if r.getMessage().startswith("--micro-batch-tokens")])
    assert said[:5] == [[], [], [], [], []]
    assert len(said[5]) == 1 and "micro-batches apply on a CPU: on this GPU no batch is cut" in said[5][0]


class _NotATensor:
    """Anything torch.load(weights_only=True) must refuse: unpickling it would import and call code."""


def test_pickled_weights_are_refused_unless_weights_only_loadable(tmp_path):
    safe = tmp_path / "safe"
    safe.mkdir()
    torch.save({"w": torch.ones(2)}, safe / "pytorch_model.bin")
    resilience.check_weight_files(safe)  # plain tensors: accepted

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "tunelab.json").write_text(json.dumps({"task": "classification", "format": "transformers"}))
    torch.save({"w": _NotATensor()}, artifact / "pytorch_model.bin")
    with pytest.raises(ModelError, match="refusing to load .*pytorch_model.bin.*weights_only=True"):
        load_artifact(artifact)

    # --resume refuses a checkpoint holding such a pickle
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / MARKER).write_text("complete\n")
    torch.save({"state": _NotATensor()}, checkpoint / "optimizer.pt")
    with pytest.raises(TunelabError, match="optimizer.pt"):
        resilience.resume_point(tmp_path / "run")
    assert os.path.exists(checkpoint / "optimizer.pt")  # refused, not deleted
