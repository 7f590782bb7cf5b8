"""Never lose a run: SIGKILL mid-epoch + --resume gives the uninterrupted result, a kill during a save
keeps the previous checkpoint, Ctrl-C saves and exits 130, and out folders are never clobbered.

Real subprocesses on a tiny BERT built from a config (no download); about a minute on 2 cores.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunelab.config import TrainConfig
from tunelab.io import GONE, MARKER, remove_leftovers
from tunelab.run import resilience
from tunelab.run.training import train

# 48 rows -> 33 train examples -> 5 optimizer steps per epoch at batch 8; 2 epochs = 10 steps.


def make_tiny(root: Path) -> tuple[Path, Path]:
    """A 2-layer, 32-wide BERT with the minilm tokenizer, and a small two-class CSV."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunelab.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    rng = random.Random(0)
    words = {"pos": "good great fine lovely superb".split(), "neg": "bad awful poor dull boring".split()}
    rows = ["text,label"]
    for i in range(48):
        label = rng.choice(["pos", "neg"])
        text = " ".join(rng.choice(words[label] + ["the", "a", "film"]) for _ in range(rng.randint(2, 12)))
        rows.append(f"{text} {i},{label}")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    return root / "tiny", root / "data.csv"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("tiny"))


def base_config(tiny, out: Path, **changes) -> TrainConfig:
    model, data = tiny
    values = dict(
        model=str(model),
        data=str(data),
        strategy="full",
        epochs=2,
        batch_size=8,
        lr=1e-3,
        save_steps=2,
        out=str(out),
    )
    values.update(changes)
    return TrainConfig(**values)


def cli_args(config: TrainConfig) -> list[str]:
    return [
        sys.executable, "-m", "tunelab.cli.main", "-q", "train", "--model", config.model, "--data", config.data,
        "--strategy", config.strategy, "--epochs", str(config.epochs), "--batch-size", str(config.batch_size),
        "--lr", str(config.lr), "--save-steps", str(config.save_steps), "--out", str(config.out),
    ]  # fmt: skip


FAULTS = Path(__file__).parent / "faults"  # sitecustomize.py: test-only faults in the subprocess (see there)
KILL_IN_SAVE_ENV = "TUNELAB_FAULT_KILL_IN_SAVE_AT_STEP"
PAUSE_AFTER_SAVE_ENV = "TUNELAB_FAULT_PAUSE_AFTER_SAVE_AT_STEP"


def start(config: TrainConfig, **env) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path, **{k: str(v) for k, v in env.items()}}
    return subprocess.Popen(
        cli_args(config), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"process ended ({proc.returncode}) before {path} appeared: {proc.stderr.read()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.02)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model" / "model.safetensors")


def assert_same_run(record: dict, reference: dict, out: Path, ref_out: Path) -> None:
    got, want = weights(out), weights(ref_out)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)
    for split in ("validation", "test"):
        for key, value in reference["metrics"][split].items():
            assert record["metrics"][split][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (split, key)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "run"
    record = train(base_config(tiny, out), progress=False)
    assert not (out / "checkpoints").exists()  # tunelab removes its own checkpoints after success
    return record, out


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tiny, reference, tmp_path):
    ref_record, ref_out = reference
    out = tmp_path / "run"
    config = base_config(tiny, out)
    # step 8 is in the middle of epoch 2 (steps 6-10); the hook holds the process there so the kill lands
    proc = start(config, **{PAUSE_AFTER_SAVE_ENV: "8:60"})
    wait_for(out / "checkpoints" / "checkpoint-8" / MARKER, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    checkpoint = resilience.last_complete_checkpoint(out / "checkpoints")
    assert checkpoint is not None and checkpoint.name == "checkpoint-8"
    # tunelab writes weights as safetensors only
    assert (checkpoint / "model.safetensors").is_file()
    assert not [p for p in checkpoint.rglob("*") if p.suffix == ".bin"]

    before = resilience.checkpoint_train_seconds(checkpoint)  # 8 of the run's 10 steps
    assert before > 0

    record = train(config.replace(resume=True), progress=False)
    assert "resumed from checkpoint-8" in record["train_info"]["notes"]
    assert_same_run(record, ref_record, out, ref_out)
    assert [e["epoch"] for e in record["train_info"]["epochs"]] == [1, 2]
    # the training time is the whole run's, not the 2 steps after the resume: a comparison ranks costs by it
    assert record["train_info"]["train_time_s"] >= before


def _epoch_history(record: dict) -> list[tuple]:
    return [(e["epoch"], e.get("val_accuracy"), e.get("val_loss")) for e in record["train_info"]["epochs"]]


@pytest.mark.parametrize("stop", ["ctrl-c", "sigkill"])
def test_a_run_stopped_at_an_epochs_last_step_resumes_to_the_uninterrupted_run(tiny, reference, tmp_path, stop):
    """A checkpoint at an epoch's last step (5 of 10) is saved before that epoch's evaluation. The evaluation drew
    from the random state (each DataLoader iterator takes a seed), so the resumed epoch 2 shuffled and dropped out
    differently; and the epoch's validation was missing from the resumed history. Both now match."""
    ref_record, ref_out = reference
    out = tmp_path / "run"
    if stop == "ctrl-c":  # held after checkpoint-4: Ctrl-C there lets step 5, the epoch's last, finish and be saved
        config = base_config(tiny, out)
        proc = start(config, **{PAUSE_AFTER_SAVE_ENV: "4:60"})
        wait_for(out / "checkpoints" / "checkpoint-4" / MARKER, proc)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        assert proc.returncode == 130
    else:  # checkpoints every 5 steps: the kill lands after checkpoint-5, the epoch's last step
        config = base_config(tiny, out, save_steps=5)
        proc = start(config, **{PAUSE_AFTER_SAVE_ENV: "5:60"})
        wait_for(out / "checkpoints" / "checkpoint-5" / MARKER, proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    assert resilience.last_complete_checkpoint(out / "checkpoints").name == "checkpoint-5"
    record = train(config.replace(resume=True), progress=False)
    assert "resumed from checkpoint-5" in record["train_info"]["notes"]
    assert_same_run(record, ref_record, out, ref_out)
    got, want = _epoch_history(record), _epoch_history(ref_record)
    assert [e[0] for e in got] == [1, 2] and got[0][1] is not None  # epoch 1 was validated
    assert [v for e in got for v in e[1:]] == pytest.approx([v for e in want for v in e[1:]], rel=1e-5)


def test_kill_during_save_keeps_previous_checkpoint_and_resume_cleans_up(tiny, reference, tmp_path, monkeypatch, caplog):
    """A kill while checkpoint-4 is written keeps checkpoint-2, which the resume continues; it says so as training
    restarts (the line came with the run's other notes, after training: after the first epoch's line)."""
    from transformers import AutoModelForSequenceClassification

    ref_record, ref_out = reference
    out = tmp_path / "run"
    config = base_config(tiny, out)
    proc = start(config, **{KILL_IN_SAVE_ENV: 4})  # dies half-way through writing checkpoint-4
    assert proc.wait(timeout=180) == -signal.SIGKILL, proc.stderr.read()
    folder = out / "checkpoints"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers and leftovers[0].startswith(".tmp-checkpoint-4-")
    assert resilience.last_complete_checkpoint(folder) == folder / "checkpoint-2"
    model = AutoModelForSequenceClassification.from_pretrained(folder / "checkpoint-2")  # intact and loadable
    assert model.num_labels == 2

    said_before_training = []
    fit = resilience.run_with_batch_search

    def training(*args, **kwargs):
        said_before_training.extend(r.getMessage() for r in caplog.records)
        return fit(*args, **kwargs)

    monkeypatch.setattr(resilience, "run_with_batch_search", training)
    with caplog.at_level("WARNING", logger="tunelab"):
        record = train(config.replace(resume=True), progress=False)  # mid-epoch 1 (step 2 of 5)
    assert "resumed from checkpoint-2" in record["train_info"]["notes"]
    assert "resumed from checkpoint-2" in said_before_training and caplog.text.count("resumed from checkpoint-2") == 1
    assert_same_run(record, ref_record, out, ref_out)
    assert not list(out.rglob(".tmp-*"))


def test_ctrl_c_saves_a_checkpoint_and_exits_130_then_resumes(tiny, reference, tmp_path):
    ref_record, ref_out = reference
    out = tmp_path / "run"
    config = base_config(tiny, out)
    proc = start(config, **{PAUSE_AFTER_SAVE_ENV: "2:60"})
    wait_for(out / "checkpoints" / "checkpoint-2" / MARKER, proc)
    proc.send_signal(signal.SIGINT)  # arrives during the pause; step 3 finishes, is saved, and the run stops
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tunelab:") and "warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("tunelab: interrupted:"), stderr
    assert "--resume" in lines[0] and "checkpoint-3" in lines[0]
    assert "Traceback" not in stderr
    assert resilience.last_complete_checkpoint(out / "checkpoints").name == "checkpoint-3"
    assert not (out / "metrics.json").exists()

    record = train(config.replace(resume=True), progress=False)
    assert_same_run(record, ref_record, out, ref_out)


def test_partial_checkpoints_and_temporaries_are_cleaned(tmp_path):
    folder = tmp_path / "checkpoints"
    for name in ("checkpoint-3", "checkpoint-6", "checkpoint-9"):
        (folder / name).mkdir(parents=True)
    (folder / "checkpoint-3" / MARKER).write_text("complete\n")
    (folder / "checkpoint-6" / MARKER).write_text("complete\n")
    (folder / ".tmp-checkpoint-12-abc").mkdir()
    assert resilience.last_complete_checkpoint(folder) == folder / "checkpoint-6"  # 9 has no marker
    removed = {p.name for p in resilience.clean_checkpoint_temporaries(folder)}
    assert removed == {"checkpoint-9", ".tmp-checkpoint-12-abc"}
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-3", "checkpoint-6"]


def test_out_folder_is_never_clobbered_and_user_files_survive_overwrite(tiny, reference, tmp_path, capsys):
    from tunelab.cli.main import main

    _, ref_out = reference
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    args = cli_args(base_config(tiny, out, epochs=1, save_steps=100))[3:]

    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunelab: error: output folder") and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    assert main([*args, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "model" / MARKER).is_file() and (out / "metrics.json").is_file()

    # a finished run has nothing to resume
    assert main([*args, "--resume"]) == 2
    assert "already finished" in capsys.readouterr().err


def test_resume_of_a_failed_run_starts_over_but_a_finished_one_is_refused(tmp_path):
    import json

    from tunelab.errors import TunelabError

    (tmp_path / "metrics.json").write_text(json.dumps({"run_info": {"status": "failed"}}))
    assert resilience.resume_point(tmp_path) is None  # compare --resume retries it from the start
    (tmp_path / "metrics.json").write_text(json.dumps({"run_info": {"status": "success"}}))
    with pytest.raises(TunelabError, match="already finished"):
        resilience.resume_point(tmp_path)


def test_a_finished_run_at_an_old_default_learning_rate_is_not_reused(tiny_bert_dir, toy_classification_data,
                                                                     tmp_path, monkeypatch):
    """``lr=None`` means "the strategy's default": after the default changes, a resumed comparison trains again
    instead of reusing a run that took the old rate."""
    from tunelab.compare.runner import finished_record
    from tunelab.config import TrainConfig
    from tunelab.run.training import train
    from tunelab.strategies import STRATEGIES

    config = TrainConfig(model=str(tiny_bert_dir), strategy="bitfit", epochs=1, batch_size=16, out=str(tmp_path / "r"))
    config = config.replace(data=train(config, data=toy_classification_data, progress=False)["config"]["data"])
    assert finished_record(tmp_path / "r", config) is not None  # as the run recorded its (in-memory) data
    monkeypatch.setattr(STRATEGIES["bitfit"], "default_lr", STRATEGIES["bitfit"].default_lr * 3)
    assert finished_record(tmp_path / "r", config) is None
    monkeypatch.undo()
    assert finished_record(tmp_path / "r", config) is not None
    import tunelab.strategies.base as base

    monkeypatch.setattr(base, "HEAD_LR", base.HEAD_LR * 2)  # the new head's default rate changed
    assert finished_record(tmp_path / "r", config) is None


@pytest.mark.parametrize("cleaner", ["prepare_out_dir", "failed run", "remove_leftovers"])
def test_each_cleaner_removes_the_temporaries_it_owns_and_nothing_else(cleaner, tmp_path):
    """Three places remove what kills left (io.remove_leftovers does it for all of them): a run's folder prepared again
    and a failed run's own clean-up take every ``.tmp-`` entry at its top; a comparison takes ``remove_tree``'s
    ``.tmp-gone-`` ones at every depth (a finished run's folder is never prepared again). Nothing else goes."""
    from tunelab.run.artifacts import prepare_out_dir
    from tunelab.run.training import _remove_failed_run

    out = tmp_path / "run"
    for folder in (out / ".tmp-model-x", out / f"{GONE}checkpoint-4-y", out / "deep" / f"{GONE}z", out / "deep" / ".tmp-w"):
        (folder / "inside").mkdir(parents=True)
    for file in (out / ".tmp-initial-weights.safetensors", out / "deep" / f"{GONE}file", out / "notes.txt"):
        file.write_text("x")
    if cleaner == "prepare_out_dir":
        prepare_out_dir(out, overwrite=False, resume=True)
    elif cleaner == "failed run":
        _remove_failed_run(out)
    else:
        remove_leftovers(tmp_path)
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.parent == out or p.parent.name == "deep")
    below = ["deep/.tmp-w", f"deep/{GONE}file", f"deep/{GONE}z"]
    expected = {"prepare_out_dir": below, "failed run": below, "remove_leftovers": [".tmp-initial-weights.safetensors", ".tmp-model-x", "deep/.tmp-w"]}
    assert left == sorted(["deep", "notes.txt", *expected[cleaner]])


def test_cleaning_up_after_a_failure_never_hides_the_failure(tmp_path, monkeypatch):
    """On a read-only folder, removing even a file that is not there raises (EROFS): that error replaced the one that
    failed the run (a clear "not writable") with a storage error advising --resume, with nothing saved."""
    import errno
    from pathlib import Path

    from tunelab.run.training import _remove_failed_run

    out = tmp_path / "run"
    out.mkdir()
    (out / "run_config.yaml").write_text("strategy: head\n")

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    _remove_failed_run(out)  # does not raise
    assert (out / "run_config.yaml").exists()


def test_a_run_is_resumed_only_as_it_started_and_only_by_one_process(tiny, reference, tmp_path):
    """While a run trains, a second run into its folder is refused (it deleted the first's checkpoint as it was
    written). --resume continues a checkpoint only with the settings it trained with (a new --lr was taken from the
    command line into the record while the optimizer came back from the checkpoint: a record of training that never
    happened) and the same number of processes; settings of how the run is carried out (--save-steps) may change.
    A damaged checkpoint is said to be damaged, in one line, with what to do; a --data file edited since is other data."""
    import shutil

    from tunelab.errors import ConfigError, ModelError, TunelabError

    ref_record, ref_out = reference
    out = tmp_path / "run"
    config = base_config(tiny, out)
    proc = start(config, **{PAUSE_AFTER_SAVE_ENV: "2:60"})
    wait_for(out / "checkpoints" / "checkpoint-2" / MARKER, proc)
    with pytest.raises(TunelabError, match=rf"^{out} is in use by another tunelab train \(process {proc.pid}\): wait for it"):
        train(config.replace(resume=True), progress=False)
    assert resilience.last_complete_checkpoint(out / "checkpoints") is not None  # the second run touched nothing
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    checkpoint = resilience.last_complete_checkpoint(out / "checkpoints")

    with pytest.raises(ConfigError, match=r"^resume=True would continue the run in .* with other settings than it trained "
                                          r"with \(lr=0\.001 → 0\.0001, batch_size=8 → 4\): resume it as it started "
                                          r"\(tunelab train --config .*run_config\.yaml --resume\), or start again with overwrite=True"):
        train(config.replace(resume=True, lr=1e-4, batch_size=4), progress=False)

    for damage, said in ((lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:1000]),
                          r"model\.safetensors is damaged \(.*\), so checkpoint-\d+ cannot be loaded: delete .*checkpoint-\d+ "
                          r"and run again with resume=True \(from an earlier checkpoint, or from the start\), or start again with overwrite=True"),
                         (lambda c: (c / "optimizer.pt").write_bytes((c / "optimizer.pt").read_bytes()[:1000]),
                          r"optimizer\.pt is damaged"),
                         (lambda c: (c / resilience.TIME_FILE).write_text('{"train_seconds": 1.0, "world_size": 2}'),
                          r"checkpoint-\d+ was trained by 2 processes, and this resume runs 1"),
                         # the --data file edited since the run started (its fingerprint is kept in each checkpoint)
                         (lambda c: (c / resilience.TIME_FILE).write_text('{"train_seconds": 1.0, "world_size": 1, '
                                                                          '"data_fingerprint": "rows of another day"}'),
                          r"checkpoint-\d+ was trained on other data than .* holds now \(the file changed since the run "
                          r"started\): resume it on the data it started with, or start again with overwrite=True")):
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(out, copy)
        damage(copy / "checkpoints" / checkpoint.name)
        with pytest.raises((ModelError, ConfigError), match=said):
            train(config.replace(resume=True, out=str(copy)), progress=False)

    record = train(config.replace(resume=True, save_steps=3), progress=False)  # how it is saved may change
    assert_same_run(record, ref_record, out, ref_out)


def test_a_checkpoint_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path):
    """torch's writer reports a full disk (or ``ulimit -f``) as a RuntimeError ("unexpected pos"), safetensors as an
    "I/O error": both become the OSError the command line reports in one line; any other error stays as it is."""
    import errno

    from tunelab.cli.main import _STORAGE_ERRORS

    failure = resilience.write_failure(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 153181056 "
                                                    "vs 153180948"), tmp_path / "checkpoint-10")
    assert isinstance(failure, OSError) and failure.errno in _STORAGE_ERRORS and failure.errno == errno.EIO
    assert failure.filename == str(tmp_path / "checkpoint-10") and "is the disk full?" in failure.strerror
    other = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    assert resilience.write_failure(other, tmp_path) is other


def test_the_resume_command_of_a_run_over_several_processes_names_its_launcher(monkeypatch, tmp_path):
    """A run under accelerate launch or mpirun was told to resume with a torchrun command: it now names the launcher
    that started it (each known by the variable it sets in its processes), or none it cannot know."""
    from tunelab.run import ranks

    for name in (*ranks.LAUNCH_VARIABLES, *(variable for _, variable in ranks.LAUNCHERS)):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "run_config.yaml"
    assert resilience.resume_command(tmp_path) == f"tunelab train --config {config} --resume"
    monkeypatch.setenv("WORLD_SIZE", "2")  # a launcher tunelab does not know
    assert resilience.resume_command(tmp_path) == (f"the launch that started it, 2 processes, running python -m "
                                                   f"tunelab.cli.main train --config {config} --resume")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    assert resilience.resume_command(tmp_path).startswith("torchrun --nproc_per_node 2 -m tunelab.cli.main train --config")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resilience.resume_command(tmp_path).startswith("torchrun --nnodes 2 --nproc_per_node 4 <the launch's rendezvous")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # accelerate launch --multi_gpu: through torchrun's agent
    assert resilience.resume_command(tmp_path) == (f"accelerate launch --multi_gpu --num_processes 8 <the launch's other "
                                                   f"options> -m tunelab.cli.main train --config {config} --resume")


def test_a_run_over_several_processes_is_resumed_as_it_ran_from_a_process_outside_its_launch(monkeypatch, tmp_path):
    """Each checkpoint keeps how its run was launched (processes, per machine, launcher). A process outside that launch
    said to finish or resume it with ``tunelab train ... --resume``, one process at half the batch (``tunelab
    evaluate`` of an unfinished run; a single-process resume refused for its process count, which said only "under the
    launcher and process count it started with"); both now give the launch's own command."""
    from tunelab.errors import ConfigError, TunelabError
    from tunelab.run import ranks
    from tunelab.run.artifacts import find_model_dir
    from tunelab.run.training import _check_same_run

    for name in (*ranks.LAUNCH_VARIABLES, *(variable for _, variable in ranks.LAUNCHERS)):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    checkpoint = out / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    resilience.write_train_seconds(checkpoint, 1.5, ranks.Launch(2, 2, "torchrun"), "abc")
    assert resilience.checkpoint_launch(checkpoint) == ranks.Launch(2, 2, "torchrun")
    assert resilience.checkpoint_data(checkpoint) == "abc"
    config = TrainConfig(out=str(out), resume=True)
    config.save(out / "run_config.yaml")
    again = f"torchrun --nproc_per_node 2 -m tunelab.cli.main train --config {out / 'run_config.yaml'} --resume"
    with pytest.raises(TunelabError) as unfinished:
        find_model_dir(out)
    assert f"finish it with `{again}`" in str(unfinished.value)
    with pytest.raises(ConfigError) as other_count:
        _check_same_run(config, out, checkpoint)
    assert f"Resume it as it started ({again})" in str(other_count.value)
    # a checkpoint saved before tunelab kept its launcher: its process count, the launcher not named
    (checkpoint / resilience.TIME_FILE).write_text('{"train_seconds": 1.5, "world_size": 2}')
    assert resilience.checkpoint_launch(checkpoint) == ranks.Launch(2, 2, None)
    assert resilience.resume_command(out, resilience.checkpoint_launch(checkpoint)).startswith(
        "the launch that started it, 2 processes, running python -m tunelab.cli.main train --config")


def test_sigterm_is_taken_as_ctrl_c_a_checkpoint_saved_and_the_resume_said(tiny, reference, tmp_path):
    """Schedulers stop a job with SIGTERM (SLURM, Kubernetes, systemd). It killed the run at once, without a word,
    losing every step since the last periodic checkpoint; now it finishes the step, saves and says how to resume."""
    ref_record, ref_out = reference
    out = tmp_path / "run"
    config = base_config(tiny, out)
    proc = start(config, **{PAUSE_AFTER_SAVE_ENV: "2:60"})
    wait_for(out / "checkpoints" / "checkpoint-2" / MARKER, proc)
    proc.send_signal(signal.SIGTERM)  # during the pause: step 3 finishes, is saved, and the run stops
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tunelab:") and "warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("tunelab: interrupted: training stopped at step"), stderr
    assert "Resume with: tunelab train --config" in lines[0] and "Traceback" not in stderr
    assert resilience.last_complete_checkpoint(out / "checkpoints").name == "checkpoint-3"  # not only the periodic one
    record = train(config.replace(resume=True), progress=False)
    assert_same_run(record, ref_record, out, ref_out)


def test_a_causal_lm_run_resumes_with_the_document_mask_it_started_with(tiny_llama_dir, tmp_path):
    """--resume continues a causal LM with the per-text attention it trained with. A run started before
    --document-mask existed (its run_config.yaml without it) packed its texts across their boundaries: its resume was
    refused ('--document-mask (default) → True'), the way out named being the very command refused, and
    --no-document-mask was refused too. It now resumes as it started; a run that recorded the setting keeps it."""
    import json
    import shutil

    import yaml

    rng = random.Random(0)
    words = "the film was good bad dull lovely story acting plot".split()
    data = tmp_path / "texts.csv"
    data.write_text("text\n" + "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
                                          for _ in range(48)) + "\n")
    out = tmp_path / "run"
    config = TrainConfig(model=str(tiny_llama_dir), data=str(data), strategy="lora", epochs=2, batch_size=2, lr=1e-3,
                         save_steps=2, out=str(out))
    path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(cli_args(config) + ["--task", "causal-lm", "--max-length", "16", "--no-forgetting"],
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path,
                                 PAUSE_AFTER_SAVE_ENV: "2:60"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "checkpoints" / "checkpoint-2" / MARKER, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    before = tmp_path / "before"  # the same run as a tunelab from before --document-mask recorded it
    shutil.copytree(out, before)
    recorded = yaml.safe_load((before / "run_config.yaml").read_text())
    assert recorded.pop("document_mask") is True
    (before / "run_config.yaml").write_text(yaml.safe_dump({**recorded, "out": str(before)}))

    for folder, kept_apart in ((out, True), (before, False)):
        resumed = TrainConfig.from_dict(yaml.safe_load((folder / "run_config.yaml").read_text())).replace(resume=True)
        record = train(resumed, progress=False)
        assert record["config"]["document_mask"] is kept_apart
        assert json.loads((folder / "model" / "tunelab.json").read_text())["document_mask"] is kept_apart


def test_an_interrupted_run_recorded_with_the_value_a_default_resolves_to_is_resumed(tiny_bert_dir, tmp_path):
    """A checkpoint whose run_config.yaml says ``layers: 2`` (the default until session 43; None now, which trains the
    top 2 blocks of a model of 2 or more) continues with the default: its model's config says it has 3 blocks. A
    recorded value the default does not resolve to is still refused."""
    from tunelab.errors import ConfigError
    from tunelab.run.training import _check_same_run

    out = tmp_path / "run"
    (out / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    config = TrainConfig(strategy="last-n", model=str(tiny_bert_dir), out=str(out))
    config.replace(layers=2).save(out / "run_config.yaml")
    _check_same_run(config, out, out / "checkpoints" / "checkpoint-1")
    config.replace(layers=3).save(out / "run_config.yaml")
    with pytest.raises(ConfigError, match=r"with other settings than it trained with \(layers=3 → \(default\)\)"):
        _check_same_run(config, out, out / "checkpoints" / "checkpoint-1")


def _killed_half_way(removing: str, *, times: int | None = None):
    """A ``shutil.rmtree`` stopped by a kill half-way through a folder whose name holds ``removing``: the weights
    gone, the rest (a checkpoint's completion marker, a model's ``tunelab.json``) still there. ``times``: only so
    many calls are stopped (a Ctrl-C: one), the later ones delete."""
    import shutil

    real = shutil.rmtree
    stopped = []

    def rmtree(path, *args, **kwargs):
        if removing not in Path(path).name or (times is not None and len(stopped) >= times):
            return real(path, *args, **kwargs)
        stopped.append(path)
        for weights_file in sorted(Path(path).rglob("*.safetensors")):
            weights_file.unlink()
        raise KeyboardInterrupt

    return rmtree


def test_a_kill_while_a_finished_run_deletes_its_checkpoints_leaves_no_checkpoint_to_trust(tiny, tmp_path, monkeypatch):
    """The checkpoints of a finished run are deleted at once (renamed aside first): a kill half-way left a
    checkpoint marked complete without its weights, which --resume took up and the Trainer failed on in a
    traceback ("Can't find a valid checkpoint"), for a run that had finished."""
    import shutil

    from tunelab.errors import TunelabError

    out = tmp_path / "run"
    monkeypatch.setattr(shutil, "rmtree", _killed_half_way("checkpoints"))
    with pytest.raises(KeyboardInterrupt):
        train(base_config(tiny, out, epochs=1), progress=False)
    monkeypatch.undo()
    assert (out / "metrics.json").is_file() and (out / "model" / "model.safetensors").is_file()
    with pytest.raises(TunelabError, match="already finished"):
        resilience.resume_point(out)
    # what the kill left (a .tmp-gone- folder) stayed in the finished run's folder, which nothing prepares again: a
    # comparison holding it clears it (remove_leftovers on its folder, as compare does first), below the top too
    assert [p.name.startswith(GONE) for p in out.glob(".tmp-*")] == [True]
    remove_leftovers(tmp_path)
    assert not list(out.rglob(".tmp-*"))


def test_ctrl_c_while_a_finished_run_deletes_its_checkpoints_leaves_nothing_behind(tiny, tmp_path, monkeypatch):
    """Ctrl-C (or a comparison's budget stop) reaching a comparison's run once it has written its record, while it
    deletes its checkpoints (renamed aside first): the delete stopped half-way, and the finished run's folder (not
    one the run created, so not cleaned as a failed run's) kept a .tmp-gone- folder for good. Now the delete is
    finished before the interrupt goes on."""
    import json
    import shutil

    from tunelab.run.worker import run_spec

    out = tmp_path / "run"
    spec = {"config": base_config(tiny, out, epochs=1, resume=True).to_dict()}  # its folder is not empty
    out.mkdir()
    (out / "spec.json").write_text(json.dumps(spec))  # as a comparison writes it, before its worker trains
    monkeypatch.setattr(shutil, "rmtree", _killed_half_way("checkpoints", times=1))
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec)
    monkeypatch.undo()
    assert resilience.run_is_complete(out)
    assert not [str(p) for p in out.rglob(".tmp-*")]


def test_a_kill_while_overwrite_replaces_a_finished_run_leaves_no_record_beside_half_a_model(tmp_path, monkeypatch):
    """--overwrite deletes the replaced run's metrics.json first and each folder at once: it deleted model/ first,
    in place, so a kill half-way left "finished" (the record) beside a model without its weights."""
    import json
    import shutil

    from tunelab.run.artifacts import prepare_out_dir

    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "model" / "tunelab.json").write_text("{}")
    (out / "model" / "model.safetensors").write_bytes(b"weights")
    (out / "metrics.json").write_text(json.dumps({"run_info": {"status": "success"}}))
    monkeypatch.setattr(shutil, "rmtree", _killed_half_way("model"))
    with pytest.raises(KeyboardInterrupt):
        prepare_out_dir(out, overwrite=True, resume=False)
    monkeypatch.undo()
    assert not resilience.run_is_complete(out)
    assert not (out / "model").exists()  # gone whole; what is left of it is a temporary the next run removes
    prepare_out_dir(out, overwrite=True, resume=False)
    assert not list(out.glob(".tmp-*"))


@pytest.mark.parametrize("phase", ["_forgetting", "write_artifact"])
def test_ctrl_c_after_the_evaluation_says_where_the_checkpoint_is_and_the_resume_ends_the_run(tiny, reference, tmp_path,
                                                                                            monkeypatch, phase):
    """Ctrl-C while the forgetting is measured or the model saved (after the last step and its evaluation) names
    the kept checkpoint and the command that resumes, as during training; it was a bare "tunelab: interrupted"."""
    from tunelab.run import artifacts, training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    ref_record, ref_out = reference
    out = tmp_path / "run"
    config = base_config(tiny, out)
    monkeypatch.setattr(training if phase == "_forgetting" else artifacts, phase, interrupted)
    with pytest.raises(resilience.RunInterrupted) as stopped:
        train(config, progress=False)
    monkeypatch.undo()
    said = str(stopped.value)
    assert ("measuring forgetting" if phase == "_forgetting" else "saving the model") in said
    assert "checkpoint-10" in said and "--resume" in said
    assert not (out / "metrics.json").exists()
    record = train(config.replace(resume=True), progress=False)
    assert_same_run(record, ref_record, out, ref_out)


def test_an_interrupt_after_a_compared_run_recorded_its_success_keeps_the_record(tiny, tmp_path, monkeypatch):
    """Ctrl-C reaching a comparison's run once it has written its success record (while it deletes its checkpoints)
    keeps that record (with what the comparison adds): the job replaced it with "interrupted", and compare --resume
    trained the finished run again from the start, its checkpoints gone."""
    import json

    from tunelab.run import training
    from tunelab.run.worker import run_spec

    def interrupted(folder):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    monkeypatch.setattr(training, "_cleanup_checkpoints", interrupted)
    spec = {"config": base_config(tiny, out, epochs=1).to_dict(), "split_seed": 42, "extra_record": {"lr_search": {"x": 1}}}
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec)
    record = json.loads((out / "metrics.json").read_text())
    assert record["run_info"]["status"] == "success", record["run_info"]
    assert record["run_info"]["split_seed"] == 42 and record["lr_search"] == {"x": 1}
