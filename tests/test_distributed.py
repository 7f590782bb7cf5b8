"""One run over two processes (torchrun, gloo on CPU) against the same run in one process.

The two-process runs use ``--batch-size 8`` and the single-process runs ``--batch-size 16``: the same
effective batch of 16. Dropout is off (a tiny BERT saved with every dropout at 0) and the data order
is fixed: 48 training rows, fewer than the 50 batches of the length-grouped sampler's "megabatch", so
both see one length-sorted permutation drawn from the same seed, and 48 is a multiple of 16, so every
step of both takes the same 16 examples (the two processes 8 each). The evaluation splits (20 examples) are not:
the processes' last batch is padded with repeated examples, which the gathered outputs and metrics must drop. What may still differ is float
rounding: each process pads its 8 examples to their own longest (the single process pads 16), and the
gradient is the mean of two half-batch means instead of one mean. Measured here (float32, 2 CPU
cores), losses and metrics differ by at most 1.8e-6 (relative) and last-n's logits by 4e-9: ``TOL``
(1e-4, relative and absolute) is 50 times that. LoRA's logits differ more, 6.4e-5 at most: Adam divides
each update by the gradient's own running size, so a weight whose gradient starts near zero (LoRA's B
matrix starts at zero) turns a rounding difference into a visible change of its first steps;
``TOL_LOGITS`` (1e-3) is 15 times that. Both are far below what a real mistake does: a loss scaled by
the number of processes (what the Trainer did before ``average_tokens_across_devices`` was set per
task) doubles every loss, and training on unsharded data takes twice the steps.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tunelab import TrainConfig
from tunelab.run.training import train

SRC = Path(__file__).resolve().parents[1] / "src"
FAULTS = Path(__file__).resolve().parent / "faults"  # sitecustomize.py: test-only faults in the launched processes
TOL = 1e-4
TOL_LOGITS = 1e-3
RESUME_TOL = 1e-6
pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is exercised on Linux"),
    # these compare processes on the CPU with an in-process run, which would train on a visible GPU (in bf16); run
    # them with CUDA_VISIBLE_DEVICES= there
    pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="gloo on the CPU: a GPU is visible"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(faults: dict[str, str] | None = None) -> dict[str, str]:
    """The launcher's environment; ``faults``: test-only hooks of ``tests/faults/sitecustomize.py`` (see there)."""
    # ahead of the caller's own path (packages may come from there: a machine without the venv), not instead of it
    path = os.pathsep.join(p for p in [str(FAULTS), str(SRC), os.environ.get("PYTHONPATH", "")] if p)
    env = dict(os.environ, PYTHONPATH=path, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               TUNELAB_STACKS_ON_SIGUSR1="1")  # where each process stands, when a launch outlives its time (_finish)
    env.pop("WORLD_SIZE", None)
    env.update(faults or {})
    return env


def _torchrun(args: list[str], *, nproc: int = 2, extra: list[str] | None = None, cwd: Path,
              faults: dict[str, str] | None = None) -> subprocess.Popen:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    launcher += extra or [f"--master_port={_free_port()}"]
    return subprocess.Popen(launcher + args, cwd=cwd, env=_env(faults), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the launch did not end in {timeout:.0f} s; its output, then each process's threads:\n"
                             + _stacks_then_kill(proc)[-12000:]) from None
    assert proc.returncode == 0, out[-3000:]
    return out


def _stacks_then_kill(proc: subprocess.Popen) -> str:
    """Ask the launcher and every process it started for their threads' stacks (``TUNELAB_STACKS_ON_SIGUSR1``, set by
    :func:`_env`), then kill them all: the output, stacks included, of a launch that hangs."""
    import psutil

    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family:  # one at a time, so that their stacks do not interleave
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGUSR1)
            time.sleep(1)
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny BERT without dropout and a CSV with its own split: 48 train / 20 validation / 20 test."""
    import torch
    from transformers import BertConfig, BertModel

    from conftest import _NEGATIVE, _POSITIVE, TINY_DIMS, _sentence, tiny_tokenizer

    root = tmp_path_factory.mktemp("dist")
    tokenizer = tiny_tokenizer()
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **TINY_DIMS)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    rng = random.Random(0)
    with open(root / "data.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "split"])
        for split, n in (("train", 48), ("validation", 20), ("test", 20)):
            for i in range(n):
                writer.writerow([_sentence(rng, _POSITIVE if i % 2 else _NEGATIVE), "pos" if i % 2 else "neg", split])
    return root


@pytest.fixture(scope="module")
def two_full(setup):
    """``full`` trained by 2 processes at batch 8 under torchrun, and by 1 process at batch 16 meanwhile."""
    proc = _torchrun(["-m", "tunelab.cli.main", "-q", "train", *_flags(setup, "full", "two-full", 8)], cwd=setup,
                     faults={"TUNELAB_PROBE_GROUP_AT_EXIT": "1"})
    one = _single(setup, "full")
    log = _finish(proc)
    return json.loads((setup / "two-full" / "metrics.json").read_text()), one, log


def _flags(root: Path, strategy: str, out: str, batch: int) -> list[str]:
    return ["--model", str(root / "bert"), "--data", str(root / "data.csv"), "--strategy", strategy, "--epochs", "2",
            "--batch-size", str(batch), "--out", str(root / out), "--cache-dir", str(root / "cache"), "--lr", "1e-3"]


def _single(root: Path, strategy: str) -> dict:
    flags = _flags(root, strategy, f"one-{strategy}", 16)
    values = {flags[i][2:].replace("-", "_"): flags[i + 1] for i in range(0, len(flags), 2)}
    config = TrainConfig.from_dict({**values, "epochs": 2, "batch_size": 16, "lr": 1e-3}, where="test")
    return train(config, progress=False)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(b))


def _same_losses(two: dict, one: dict) -> None:
    assert len(two["train_info"]["epochs"]) == len(one["train_info"]["epochs"]) == 2
    for e2, e1 in zip(two["train_info"]["epochs"], one["train_info"]["epochs"]):
        for key in ("train_loss", "val_loss"):
            assert _close(e2[key], e1[key]), (key, e2[key], e1[key])
    for split in ("validation", "test"):
        for key, value in one["metrics"][split].items():
            assert _close(two["metrics"][split][key], value), (split, key, two["metrics"][split][key], value)


def _logits(folder: Path, texts: list[str]):
    import torch

    from tunelab.run.artifacts import load_artifact

    model, tokenizer, _ = load_artifact(folder)
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def _texts(root: Path) -> list[str]:
    with open(root / "data.csv") as f:
        return [row["text"] for row in csv.DictReader(f) if row["split"] == "test"]


def test_full_under_two_processes_matches_one_process(setup, two_full):
    """``tunelab train`` under torchrun: one artifact folder, one record with both processes' peaks,
    and the losses and metrics of the single-process run."""
    two, one, log = two_full
    out = setup / "two-full"
    assert log.count("model: ") == 1  # one report, from the main process
    assert log.count("gloo threads at exit: 0") == 2  # the CLI's processes leave no gloo thread to Python's finalizing
    # and the group's last owner is not the run's DDP wrapper, which would free it with the GIL held (a hang at exit)
    assert log.count("DDP wrappers at the group's destruction: 0") == 2, log[-3000:]
    # every trainable weight gets a gradient (a probe pass), so DDP does not search for unused ones each step
    assert "find_unused_parameters=True was specified" not in log
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model", "outputs", "progress.json", "run_config.yaml"]
    assert two["train_info"]["world_size"] == 2
    # the batch of an optimizer step: --batch-size is per process (the card said "batch size 8" for this run of 16)
    assert two["train_info"]["effective_batch_size"] == one["train_info"]["effective_batch_size"] == 16
    assert "batch size 16 per optimizer step (8 per process x 2 processes)," in (out / "model" / "README.md").read_text()
    assert ", batch size 16, " in (setup / "one-full" / "model" / "README.md").read_text()
    # how to repeat it: the launch it ran under, not one process at half the batch (the card and run_config.yaml)
    again = f"torchrun --nproc_per_node 2 -m tunelab.cli.main train --config {out / 'run_config.yaml'} --overwrite"
    assert f"(`{again}`," in (out / "model" / "README.md").read_text()
    assert "one process would take 8 examples per optimizer step instead of 16" in (out / "model" / "README.md").read_text()
    assert (out / "run_config.yaml").read_text().startswith(f"# repeats this run: {again}\n")
    peaks = two["train_info"]["peak_memory_mb_per_rank"]
    assert len(peaks) == 2 and two["train_info"]["peak_memory_mb"] == max(peaks)
    _same_losses(two, one)
    texts = _texts(setup)
    assert _logits(out, texts).allclose(_logits(setup / "one-full", texts), rtol=TOL_LOGITS, atol=TOL_LOGITS)
    _same_outputs(out, setup / "one-full")


def _same_outputs(two: Path, one: Path) -> None:
    """The per-example outputs of both runs list the same examples in the same (dataset) order, with the same results:
    the paired comparisons read them side by side."""
    import numpy as np

    from tunelab.run.outputs import ExampleOutputs

    for split in ("validation", "test"):
        a, b = ExampleOutputs.load(two, split), ExampleOutputs.load(one, split)
        assert len(a) == len(b) == 20
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.predictions, b.predictions), split
        assert np.allclose(a.losses, b.losses, rtol=TOL_LOGITS, atol=TOL_LOGITS), split


def test_lora_and_cached_last_n_under_two_processes(setup):
    """``lora`` (a peft adapter) and ``last-n`` (trained from the frozen-layer cache, which the main
    process builds while the other waits and then reads) give the single-process results and logits."""
    script = setup / "two_runs.py"
    script.write_text(
        "from tunelab import TrainConfig, train\n"
        f"for flags in {[_flags(setup, 'lora', 'two-lora', 8), _flags(setup, 'last-n', 'two-last-n', 8)]!r}:\n"
        "    values = {flags[i][2:].replace('-', '_'): flags[i + 1] for i in range(0, len(flags), 2)}\n"
        "    train(TrainConfig.from_dict({**values, 'epochs': 2, 'batch_size': 8, 'lr': 1e-3}, where='script'), progress=False)\n"
        "import gc\n"
        "gc.freeze()  # what the runs left in reference cycles (the group's last owners) is frozen now\n"
    )
    proc = _torchrun([str(script)], cwd=setup, faults={"TUNELAB_PROBE_GROUP_AT_EXIT": "1"})
    one = {s: _single(setup, s) for s in ("lora", "last-n")}
    log = _finish(proc)
    # a script of the user's, through the Python API: both runs used the group (a script may train again), and it is
    # gone before Python finalizes in both processes: left standing, gloo's threads could abort a process whose runs
    # had succeeded
    assert log.count("process group at exit: destroyed") == 2 and "process group at exit: standing" not in log
    # and its threads have been joined, the script's gc.freeze() notwithstanding: one still letting go of a collective
    # as Python finalized aborted a rank
    assert log.count("gloo threads at exit: 0") == 2, log[-3000:]
    assert log.count("DDP wrappers at the group's destruction: 0") == 2, log[-3000:]
    assert "find_unused_parameters=True was specified" not in log  # the cache's top part too: every weight trains
    texts = _texts(setup)
    for strategy in ("lora", "last-n"):
        two = json.loads((setup / f"two-{strategy}" / "metrics.json").read_text())
        _same_losses(two, one[strategy])
        got, want = _logits(setup / f"two-{strategy}", texts), _logits(setup / f"one-{strategy}", texts)
        assert got.allclose(want, rtol=TOL_LOGITS, atol=TOL_LOGITS), (got - want).abs().max()
    cache = json.loads((setup / "two-last-n" / "metrics.json").read_text())["train_info"]["cache"]
    assert cache["used"] and cache["processes"] == 2 and "main process of each node" in cache["built_by"]


def test_two_nodes_complete_a_run_together(setup):
    """Two torchrun invocations, ``--nnodes 2`` with a rendezvous on 127.0.0.1, train one run."""
    port = _free_port()
    procs = [
        _torchrun(["-m", "tunelab.cli.main", "-q", "train", *_flags(setup, "bitfit", "nodes", 8)], nproc=1, cwd=setup,
                  extra=["--nnodes=2", f"--node_rank={i}", "--master_addr=127.0.0.1", f"--master_port={port}"])
        for i in range(2)
    ]
    for proc in procs:
        _finish(proc)
    record = json.loads((setup / "nodes" / "metrics.json").read_text())
    assert record["run_info"]["status"] == "success" and record["train_info"]["world_size"] == 2
    assert (setup / "nodes" / "model" / "tunelab.json").is_file()


def _kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every worker it started, as a scheduler ending the job (or a lost machine)
    would: no process gets to clean up. torchrun starts each worker in a session of its own, so they are
    found as its children, not by process group."""
    import psutil

    workers = psutil.Process(proc.pid).children(recursive=True)
    for p in [psutil.Process(proc.pid), *workers]:
        p.kill()
    proc.communicate(timeout=30)
    psutil.wait_procs(workers, timeout=30)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before {path} appeared: {proc.stdout.read()[-3000:]}"
        if time.monotonic() > deadline:
            _kill_job(proc)
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def test_killed_two_process_run_resumes_under_torchrun_to_the_uninterrupted_result(setup, two_full):
    """A 2-process run killed outright (launcher and both workers, SIGKILL) after checkpoint 4 of its 6 steps
    (one step into epoch 2), then run again under torchrun with ``--resume``, ends with the uninterrupted
    2-process run's weights, losses and metrics, and leaves one artifact folder and nothing else of the kill.

    Both runs use 2 processes at batch 8, so each step sees the same examples, padded the same way, and
    summed in the same order: the resumed run repeats the same float operations from the same saved
    optimizer state. Measured here the weights come out bit-identical; ``RESUME_TOL`` (1e-6, relative and
    absolute) only leaves room for a reduction order that a different gloo build might choose."""
    from safetensors.torch import load_file

    from tunelab.io import MARKER
    from tunelab.run import resilience

    out = setup / "two-full-resumed"
    flags = ["-m", "tunelab.cli.main", "-q", "train", *_flags(setup, "full", out.name, 8), "--save-steps", "2", "--no-forgetting"]
    # both processes hold still once checkpoint-4 is complete, so that the kill lands between two steps' saves
    proc = _torchrun(flags, cwd=setup, faults={"TUNELAB_FAULT_PAUSE_AFTER_SAVE_AT_STEP": "4:120"})
    _wait_for(out / "checkpoints" / "checkpoint-4" / MARKER, proc)
    _kill_job(proc)
    assert not (out / "metrics.json").exists() and not (out / "model").exists()
    assert resilience.last_complete_checkpoint(out / "checkpoints").name == "checkpoint-4"
    assert sorted(p.name for p in (out / "checkpoints" / "checkpoint-4").glob("rng_state_*")) == ["rng_state_0.pth",
                                                                                                    "rng_state_1.pth"]

    _finish(_torchrun([*flags, "--resume"], cwd=setup))
    record, (reference, _, _) = json.loads((out / "metrics.json").read_text()), two_full
    assert "resumed from checkpoint-4" in record["train_info"]["notes"]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model", "outputs", "progress.json", "run_config.yaml"]
    assert not list(out.rglob(".tmp-*"))
    got, want = load_file(out / "model" / "model.safetensors"), load_file(setup / "two-full" / "model" / "model.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=RESUME_TOL, atol=RESUME_TOL, msg=name)
    for e_got, e_want in zip(record["train_info"]["epochs"], reference["train_info"]["epochs"], strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert e_got[key] == pytest.approx(e_want[key], rel=RESUME_TOL, abs=RESUME_TOL), (e_got, e_want)
    for split in ("validation", "test"):
        assert record["metrics"][split] == pytest.approx(reference["metrics"][split], rel=RESUME_TOL, abs=RESUME_TOL)


@pytest.fixture
def fsdp_on_gpus(monkeypatch):
    """The environment ``accelerate launch --config_file examples/accelerate/fsdp.yaml`` gives each process, with
    :func:`tunelab.run.ranks.sharded` answering as on GPUs (on CPU accelerate leaves FSDP off: see there)."""
    from tunelab.run import ranks

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setattr(ranks, "sharded", ranks.sharding_requested)


def test_what_weight_sharding_cannot_write_is_refused_in_one_line(setup, fsdp_on_gpus, monkeypatch, tmp_path):
    """Under FSDP 2 / ZeRO-3 the artifact comes from the gathered state dict; what cannot be written from it
    is refused before anything is written, with one line and exit code 2."""
    from test_cli import tunelab
    from tunelab.run import ranks
    from tunelab.strategies import get_strategy, strategy_names

    refused = {name for name in strategy_names() if ranks.sharding_problem(get_strategy(name), merge=False)}
    assert refused == {name for name in strategy_names() if get_strategy(name).unshardable}
    assert refused and len(refused) < len(strategy_names())  # peft adapters other than the soft prompt do run
    name = sorted(refused)[0]
    flags = ["train", "--model", str(setup / "bert"), "--data", str(setup / "data.csv"), "--out", str(tmp_path / "o")]
    code, _, err = tunelab(*flags, "--strategy", name)
    assert code == 2 and err.count("\n") == 1 and f"'{name}' cannot run under FSDP" in err, err
    mergeable = next(n for n in strategy_names() if get_strategy(n).can_merge and n not in refused)
    code, _, err = tunelab(*flags, "--strategy", mergeable, "--merge")
    assert code == 2 and "--merge under FSDP" in err, err
    monkeypatch.setenv("FSDP_VERSION", "1")
    code, _, err = tunelab(*flags, "--strategy", "full")
    assert code == 2 and "fsdp_version: 2" in err, err
    assert not (tmp_path / "o").exists()

    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")  # whole weights on every process: all allowed
    assert not ranks.shards_weights() and ranks.sharding_problem(get_strategy(name), merge=True) is None
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert "zero3_save_16bit_model: true" in ranks.sharding_problem(get_strategy("full"), merge=False)
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL", "true")
    assert ranks.sharding_problem(get_strategy("full"), merge=False) is None


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_sharded_weights_are_written_from_the_gathered_state_dict(setup, fsdp_on_gpus, monkeypatch, tmp_path, strategy):
    """The FSDP write path in one process: the artifact comes from ``accelerator.get_state_dict`` (what gathers
    FSDP 2's shards on the main process), never from the model the main process holds, which under FSDP is
    a shard. Here, once the state dict is gathered, the model's weights are zeroed to stand for that shard:
    the artifact must load and hold exactly the gathered weights, and the no-change check reads them too."""
    from accelerate import Accelerator

    from tunelab.run.artifacts import load_artifact

    gathered: dict = {}
    get_state_dict = Accelerator.get_state_dict

    def gather_then_shard(self, model, unwrap=True):
        whole = {k: v.detach().clone() for k, v in get_state_dict(self, model, unwrap=unwrap).items()}
        gathered.update(whole)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return whole

    monkeypatch.setattr(Accelerator, "get_state_dict", gather_then_shard)
    config = TrainConfig(model=str(setup / "bert"), data=str(setup / "data.csv"), strategy=strategy, epochs=1,
                         batch_size=16, lr=1e-3, out=str(tmp_path / "o"))
    record = train(config, progress=False)
    assert gathered and "under FSDP weight sharding" in record["train_info"]["forgetting"]["error"]
    model, _, _ = load_artifact(tmp_path / "o")
    # an adapter's artifact leaves out the head it replaced (peft's original_module, drawn anew on loading)
    common = [k for k in model.state_dict() if k in gathered and "original_module" not in k]
    trained = [k for k in common if "classifier" in k or "lora_" in k]
    assert trained and len(common) >= len(trained)
    for key in common:
        torch.testing.assert_close(model.state_dict()[key].cpu(), gathered[key].cpu(), rtol=0, atol=0, msg=key)
    assert any(model.state_dict()[k].abs().sum() > 0 for k in trained)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU test: on a GPU accelerate applies FSDP")
def test_fsdp_config_on_cpu_trains_as_data_parallel_and_says_so(setup, monkeypatch, tmp_path):
    """accelerate applies FSDP only on GPUs; on CPU the run trains (plain data parallel) and its record says so."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    config = TrainConfig(model=str(setup / "bert"), data=str(setup / "data.csv"), strategy="head", epochs=1,
                         batch_size=16, lr=1e-3, out=str(tmp_path / "o"), forgetting=False)
    record = train(config, progress=False)
    assert any("asks for FSDP, which accelerate applies only on GPUs" in n for n in record["train_info"]["notes"])


def test_shipped_accelerate_configs_load_and_ask_for_what_tunelab_writes_from():
    """``examples/accelerate/*.yaml`` load in accelerate, open with the command that runs them, and ask for
    what the artifact needs (FSDP 2; ZeRO-3's gathered 16-bit weights)."""
    from accelerate.commands.config.config_args import load_config_from_file

    folder = SRC.parent / "examples" / "accelerate"
    configs = {p.name: load_config_from_file(str(p)) for p in sorted(folder.glob("*.yaml"))}
    assert set(configs) == {"fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"}
    for name in configs:
        assert (folder / name).read_text().startswith(f"# accelerate launch --config_file examples/accelerate/{name} ")
    assert configs["fsdp.yaml"].fsdp_config["fsdp_version"] == 2
    assert configs["deepspeed_zero2.yaml"].deepspeed_config["zero_stage"] == 2
    zero3 = configs["deepspeed_zero3.yaml"].deepspeed_config
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"] is True


def test_workers_stop_when_torchrun_is_killed_outright(setup):
    """torchrun's agent SIGKILLed alone (an out-of-memory kill, a ``kill -9`` of the launcher): its workers trained on,
    orphaned, and wrote the run's model and record by themselves while a resume could start beside them. They now
    watch the agent and stop once it is gone, saying how to resume; the last checkpoint stays for it."""
    import psutil

    from tunelab.io import MARKER
    from tunelab.run import resilience

    out = setup / "orphans"
    flags = ["-m", "tunelab.cli.main", "-q", "train", *_flags(setup, "full", out.name, 8), "--save-steps", "2", "--no-forgetting"]
    proc = _torchrun(flags, cwd=setup, faults={"TUNELAB_FAULT_PAUSE_AFTER_SAVE_AT_STEP": "2:120"})
    _wait_for(out / "checkpoints" / "checkpoint-2" / MARKER, proc)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 2
    psutil.Process(proc.pid).kill()  # the agent alone
    gone, alive = psutil.wait_procs(workers, timeout=60)
    output, _ = proc.communicate(timeout=60)
    for p in alive:
        p.kill()
    assert not alive, f"the workers outlived their launcher: {output[-2000:]}"
    assert output.count("torchrun's agent is gone (killed outright): this process stops with it; resume from the last "
                        "checkpoint with torchrun --nproc_per_node 2 -m tunelab.cli.main train --config") == 2, output[-2000:]
    assert not (out / "metrics.json").exists() and not (out / "model").exists()
    assert resilience.last_complete_checkpoint(out / "checkpoints").name == "checkpoint-2"


def test_an_error_every_process_meets_is_said_once(setup):
    """A bad flag, or ``tunelab compare`` under torchrun: every process meets the same error. It was said by each
    (``[rank 1]`` then the same line again), and a process still parsing when another exited was stopped by the launcher
    with a traceback. Now each machine's first process says it, once, with exit code 2."""
    for args in (["train", "--model", str(setup / "bert"), "--bogus-flag", "3"],
                 ["compare", "--model", str(setup / "bert"), "--data", str(setup / "data.csv"), "--strategies", "head"]):
        proc = _torchrun(["-m", "tunelab.cli.main", *args], cwd=setup)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0
        said = [line for line in out.splitlines() if line.startswith("tunelab: error: ")]
        assert len(said) == 1 and "[rank 1]" not in said[0], out[-3000:]  # torchrun's summary lists each rank's
        assert "KeyboardInterrupt" not in out and "tunelab/cli" not in out, out[-3000:]
        assert "exitcode  : 2" in out  # torchrun's summary: the process that said it ended with tunelab's code
        # and its summary's root cause is that line (tunelab leaves it in the worker's TORCHELASTIC_ERROR_FILE)
        assert f"traceback : {said[0]}" in out and "To enable traceback" not in out, out[-3000:]


def test_torchruns_failure_summary_names_tunelabs_error(setup, tmp_path, monkeypatch, capsys):
    """torchrun's agent ends a failed launch with its own summary, whatever the worker did; its root cause read
    "traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html" (a worker that wrote
    nothing to its ``TORCHELASTIC_ERROR_FILE``). The process that says tunelab's error line, a bad option or a bad
    flag, now leaves it there, and the summary's root cause is that line, read by torch's own reader."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from tunelab.cli.main import main

    for args in (["train", "--model", str(setup / "bert"), "--data", str(tmp_path / "nowhere.csv"), "--out",
                  str(tmp_path / "o")],
                 ["train", "--model", str(setup / "bert"), "--bogus-flag", "3"]):
        error_file = tmp_path / "error.json"
        error_file.unlink(missing_ok=True)
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
        with contextlib.suppress(SystemExit):
            assert main(args) == 2
        said = capsys.readouterr().err.strip()
        assert said.startswith("tunelab: error: ") and "\n" not in said
        failure = ProcessFailure(local_rank=0, pid=1, exitcode=2, error_file=str(error_file))
        summary = ChildFailedError("tunelab.cli.main", {0: failure}).format_msg()
        assert f"traceback : {said}" in summary and "To enable traceback" not in summary, summary


def test_a_process_the_launcher_stops_while_it_starts_leaves_a_line_for_the_summary(tmp_path, monkeypatch, capsys):
    """A bad flag under torchrun on a loaded machine: the first process said tunelab's error and exited while the second
    was still importing; the launcher stopped that one (SIGTERM, taken as Ctrl-C) before it met the error, and the
    failure summary showed "To enable traceback see: ..." for it. It now leaves "tunelab: interrupted" there, and
    keeps quiet on stderr (the first process said why)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from tunelab.cli import main as cli

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt

    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "build_parser", stopped)
    assert cli.main(["train", "--bogus-flag", "3"]) == 130
    assert capsys.readouterr().err == ""
    summary = ChildFailedError("tunelab.cli.main", {1: ProcessFailure(local_rank=1, pid=1, exitcode=130,
                                                                         error_file=str(error_file))}).format_msg()
    assert "traceback : tunelab: interrupted" in summary and "To enable traceback" not in summary, summary


def test_a_process_that_leaves_an_error_to_the_first_leaves_its_line_for_the_summary_after_it(tmp_path, monkeypatch,
                                                                                              capsys):
    """``tunelab compare`` (or a bad flag) under torchrun: the second process left its line in its error file at once,
    then waited for the first to say it; the summary's root cause is the earliest line, and was "[rank 1] tunelab
    compare runs in one process ..." when the second got there first, beside the first's line on stderr. It now leaves
    its line once its wait is over (the launcher stopped it after the first exited, or the error was its alone)."""
    from tunelab.cli import main as cli
    from tunelab.run import ranks

    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    left_before_the_wait = []
    monkeypatch.setattr(ranks, "leave_it_to_the_first", lambda: left_before_the_wait.append(error_file.exists()) or True)
    with pytest.raises(SystemExit) as bad_flag:
        cli.main(["train", "--bogus-flag", "3"])
    assert bad_flag.value.code == 2
    assert "unrecognized arguments: --bogus-flag 3" in json.loads(error_file.read_text())["message"]["message"]
    error_file.unlink()
    assert cli.main(["compare", "--model", "minilm", "--data", "rotten-tomatoes", "--strategies", "head",
                     "--out", str(tmp_path / "c")]) == 2
    assert "[rank 1] tunelab compare runs in one process" in json.loads(error_file.read_text())["message"]["message"]
    assert left_before_the_wait == [False, False] and capsys.readouterr().err == ""


MPI_LAUNCHES = {  # world size, rank, local rank, processes on this machine: 4, 3, 1, 2 (the second of two machines)
    "open-mpi": {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
                 "OMPI_COMM_WORLD_LOCAL_SIZE": "2"},
    "intel-mpi-mpich": {"PMI_SIZE": "4", "PMI_RANK": "3", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"},
    "mvapich2": {"MV2_COMM_WORLD_SIZE": "4", "MV2_COMM_WORLD_RANK": "3", "MV2_COMM_WORLD_LOCAL_RANK": "1",
                 "MV2_COMM_WORLD_LOCAL_SIZE": "2"},
}


@pytest.mark.parametrize("launch", sorted(MPI_LAUNCHES))
def test_an_mpi_launch_is_read_as_accelerate_reads_it(launch, monkeypatch, tmp_path):
    """accelerate launch's MPI launch (mpirun) sets no WORLD_SIZE / RANK / LOCAL_RANK: each process reads its place from
    the MPI implementation's own variables, as accelerate does (``get_cpu_distributed_information``). tunelab read only
    WORLD_SIZE: each of the 4 processes took itself for a run of one, and wrote the run's files. It now reads them
    as accelerate does, before any process group exists."""
    from accelerate.utils import get_cpu_distributed_information

    from tunelab.run import ranks, resilience

    for name in (*ranks.LAUNCH_VARIABLES, *(variable for _, variable in ranks.LAUNCHERS)):
        monkeypatch.delenv(name, raising=False)
    for name, value in MPI_LAUNCHES[launch].items():
        monkeypatch.setenv(name, value)
    theirs = get_cpu_distributed_information()
    ours = (ranks.world_size(), ranks.launch_rank(), ranks.local_rank(), ranks.local_world_size())
    assert ours == (theirs.world_size, theirs.rank, theirs.local_rank, theirs.local_world_size) == (4, 3, 1, 2)
    assert ranks.distributed() and ranks.processes_ignored() is None
    assert resilience.resume_command(tmp_path).startswith("mpirun -n 4 <the launch's other options> python -m tunelab")
    monkeypatch.setenv("WORLD_SIZE", "4")  # accelerate's, once the process group exists: still mpirun's launch
    assert resilience.resume_command(tmp_path).startswith("mpirun -n 4 ")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # accelerate launch --mpirun_hostfile
    assert resilience.resume_command(tmp_path).startswith("accelerate launch --num_processes 4 ")


def test_sigterm_to_torchrun_saves_a_checkpoint_and_says_so_once(setup):
    """``kill`` of torchrun (as a scheduler stops a job): both processes finish the step and save a checkpoint; each
    said so, the same line twice. Now the first process says it."""
    from tunelab.io import MARKER

    out = setup / "terminated"
    flags = ["-m", "tunelab.cli.main", "-q", "train", *_flags(setup, "head", out.name, 8), "--save-steps", "2",
             "--no-forgetting"]
    proc = _torchrun(flags, cwd=setup, faults={"TUNELAB_FAULT_PAUSE_AFTER_SAVE_AT_STEP": "2:120"})
    _wait_for(out / "checkpoints" / "checkpoint-2" / MARKER, proc)
    proc.send_signal(signal.SIGTERM)
    log, _ = proc.communicate(timeout=120)
    assert log.count("tunelab: interrupted: training stopped at step") == 1, log[-3000:]
    assert "Resume with: torchrun --nproc_per_node 2 -m tunelab.cli.main train --config" in log
    assert not (out / "metrics.json").exists() and list((out / "checkpoints").glob("checkpoint-*"))


def test_the_resume_command_of_an_accelerate_launch_starts_as_many_processes(tmp_path, monkeypatch):
    """``accelerate launch --multi_gpu --num_processes 2`` on CPU was told to resume with ``accelerate launch
    --num_processes 2 <the launch's other options> ...``: without --multi_gpu (nothing else to give) accelerate's
    single-process launcher started one process, which tunelab refused with the same command, a loop. The command now
    keeps the option that chose the launcher (from what accelerate sets in its processes); followed as it reads, it
    starts two processes that say the same command. A launch by an FSDP / DeepSpeed config or flag gets no
    --multi_gpu (it would turn them off); an MPI launch keeps --cpu; the checkpoint keeps the options."""
    import shutil

    from tunelab.errors import ConfigError
    from tunelab.run import ranks, resilience
    from tunelab.run.training import _check_same_run

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    script = tmp_path / "probe.py"
    script.write_text("import os\nfrom tunelab.run import ranks\n"
                      "os.write(1, f'launch: {ranks.world_size()} {ranks.Launch.current().command(\"x\")}\\n'.encode())\n")

    def launched(options: list[str]) -> list[str]:
        done = subprocess.run([accelerate, "launch", *options, f"--main_process_port={_free_port()}", str(script)],
                              env=_env(), capture_output=True, text=True, timeout=120)
        return sorted(line for line in done.stdout.splitlines() if line.startswith("launch:"))

    first = launched(["--multi_gpu", "--num_processes", "2"])
    assert len(first) == 2 and first[0] == first[1] and first[0].startswith("launch: 2 "), first
    hint = first[0].removeprefix("launch: 2 ")
    options = hint.split(" <the launch's other options> ")[0].split()[2:]  # as it reads, the placeholder left out
    assert launched(options) == first, (hint, options)  # two processes again, which say the same command
    assert hint == "accelerate launch --multi_gpu --num_processes 2 <the launch's other options> -m tunelab.cli.main x"

    for name in (*ranks.LAUNCH_VARIABLES, *(variable for _, variable in ranks.LAUNCHERS), "ACCELERATE_USE_CPU",
                 "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_MEGATRON_LM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "none",
                        "ACCELERATE_MIXED_PRECISION": "no"}.items():  # accelerate launch --multi_gpu's processes
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    checkpoint = out / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    resilience.write_train_seconds(checkpoint, 1.5, ranks.Launch.current(), "abc")
    resume = "accelerate launch --multi_gpu --num_processes 2 <the launch's other options> -m tunelab.cli.main train"
    assert resilience.resume_command(out).startswith(resume)
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(name)  # a later single-process resume, refused with the launch's command
    config = TrainConfig(out=str(out), resume=True)
    config.save(out / "run_config.yaml")
    with pytest.raises(ConfigError) as refused:
        _check_same_run(config, out, checkpoint)
    assert f"Resume it as it started ({resume}" in str(refused.value)

    for name, value in {"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "none", "ACCELERATE_MIXED_PRECISION": "no",
                        "ACCELERATE_USE_FSDP": "true"}.items():  # --config_file fsdp.yaml (or --use_fsdp)
        monkeypatch.setenv(name, value)
    assert resilience.resume_command(out).startswith("accelerate launch --num_processes 2 <the launch's other options>")
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.delenv("WORLD_SIZE")
    for name, value in {**MPI_LAUNCHES["open-mpi"], "ACCELERATE_USE_CPU": "True"}.items():  # --cpu --mpirun_hostfile
        monkeypatch.setenv(name, value)
    assert resilience.resume_command(out).startswith("accelerate launch --cpu --num_processes 4 <the launch's other")


def test_accelerate_cpu_launch_of_several_processes_that_starts_one_says_so(setup, tmp_path, monkeypatch):
    """``accelerate launch --cpu --num_processes 2`` starts one process (accelerate's single-process launcher); the run
    trained alone at half the batch asked for, with nothing said. Its record and warnings now say so; ``--cpu`` alone
    (one process asked for) and a real launch of two say nothing. So does ``--num_processes 2`` without ``--cpu`` or
    ``--multi_gpu`` on a machine without GPUs (the same launcher), which the note missed until session 48."""
    import shutil

    from tunelab.run import ranks

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    script = tmp_path / "probe.py"
    # one write() of the whole line: two processes printing at once interleaved print()'s pieces ("note:note: False")
    script.write_text("import os\nfrom tunelab.run import ranks\n"
                      "os.write(1, f'note: {ranks.processes_ignored() is not None}\\n'.encode())\n")
    for launch, says in ((["--cpu", "--num_processes", "2"], ["note: True"]), (["--num_processes", "2"], ["note: True"]),
                         (["--cpu"], ["note: False"]), (["--multi_gpu", "--num_processes", "2"], ["note: False"] * 2)):
        done = subprocess.run([accelerate, "launch", *launch, f"--main_process_port={_free_port()}", str(script)],
                              env=_env(), capture_output=True, text=True, timeout=120)
        assert sorted(line for line in done.stdout.splitlines() if line.startswith("note:")) == says, (launch, done)

    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")  # what that launch gives its one process
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config = TrainConfig(model=str(setup / "bert"), data=str(setup / "data.csv"), strategy="head", epochs=1,
                         batch_size=16, lr=1e-3, out=str(tmp_path / "o"), forgetting=False)
    record = train(config, progress=False)
    assert record["train_info"]["world_size"] == 1
    assert any(n == ranks.processes_ignored() for n in record["train_info"]["notes"]), record["train_info"]["notes"]


def test_a_causal_lm_trains_data_parallel_after_its_as_loaded_validation(tiny_llama_dir, tmp_path):
    """A causal LM is validated as loaded before its first step; accelerate then marked the model prepared (for
    evaluation), and the training's prepare left it without DistributedDataParallel: each process trained its own
    copy on half the batches, no gradient exchanged, and the artifact was the main process's copy (a resume, which
    reads the saved as-loaded outputs instead, trained wrapped and ended elsewhere than the uninterrupted run). Two
    processes at batch 2 now give one process's validation and test losses at batch 4, as a classifier's do."""
    rng = random.Random(0)
    words = "the film was good bad dull lovely story acting plot".split()
    data = tmp_path / "texts.csv"
    data.write_text("text\n" + "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(48)))
    flags = ["--model", str(tiny_llama_dir), "--data", str(data), "--strategy", "full", "--task", "causal-lm",
             "--max-length", "16", "--epochs", "1", "--lr", "1e-3"]
    proc = _torchrun(["-m", "tunelab.cli.main", "-q", "train", *flags, "--no-forgetting", "--batch-size", "2", "--out",
                      str(tmp_path / "two")], cwd=tmp_path)
    values = {flags[i][2:].replace("-", "_"): flags[i + 1] for i in range(0, len(flags), 2)}
    one = train(TrainConfig.from_dict({**values, "forgetting": False, "epochs": 1, "lr": 1e-3, "max_length": 16,
                                       "batch_size": 4, "out": str(tmp_path / "one")}, where="test"), progress=False)
    _finish(proc)
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["train_info"]["as_loaded_validation"]  # the evaluation before training happened
    # the validation and test losses of the weights trained (measured: 7e-6 and 2e-5 apart, relative; unwrapped, 6e-3);
    # the logged train_loss, a mean of the processes' per-step losses, was 4e-4 apart here and is left out
    for e2, e1 in zip(two["train_info"]["epochs"], one["train_info"]["epochs"], strict=True):
        assert _close(e2["val_loss"], e1["val_loss"]), (e2, e1)
    assert _close(two["metrics"]["test"]["loss"], one["metrics"]["test"]["loss"]), (two["metrics"], one["metrics"])


def test_evaluate_and_predict_under_torchrun_say_their_results_once(setup, tmp_path):
    """``tunelab evaluate`` and ``tunelab predict`` under torchrun: each process scored the whole split (or labelled
    every text) and printed it, so the scores / predictions came twice. They now run in the launch's first process
    alone; the others end at once (exit 0)."""
    config = TrainConfig(model=str(setup / "bert"), data=str(setup / "data.csv"), strategy="head", epochs=1,
                         batch_size=16, out=str(tmp_path / "run"), forgetting=False)
    train(config, progress=False)
    script = tmp_path / "both.py"  # one launch for both commands: each launch costs its processes' imports
    script.write_text("import sys\nfrom tunelab.cli.main import main\n"
                      f"codes = [main(['evaluate', {str(tmp_path / 'run')!r}, '--data', {str(setup / 'data.csv')!r}]),\n"
                      f"         main(['predict', {str(tmp_path / 'run')!r}, 'a great film'])]\n"
                      "sys.exit(max(codes))\n")
    out = _finish(_torchrun([str(script)], cwd=tmp_path))
    assert out.count("accuracy\t") == 1 and out.count("examples\t20") == 1, out[-3000:]
    assert out.count("\ta great film") == 1, out[-3000:]


@pytest.mark.parametrize("launch", sorted(MPI_LAUNCHES))
def test_a_command_that_trains_nothing_runs_in_the_first_process_of_an_mpi_launch_alone(launch, monkeypatch, tmp_path,
                                                                                         capsys):
    """The place a launch gives each process, read from MPI's variables too: ``tunelab evaluate`` on the fourth process
    of an mpirun launch ends at once, saying nothing; the first process does the work (here: says what is wrong)."""
    from tunelab.cli.main import main

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in MPI_LAUNCHES[launch].items():
        monkeypatch.setenv(name, value)
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 0
    assert capsys.readouterr() == ("", "")
    rank = next(name for name in MPI_LAUNCHES[launch] if name.endswith("_RANK") and "LOCAL" not in name)
    monkeypatch.setenv(rank, "0")
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
