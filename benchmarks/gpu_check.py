"""The GPU path in one prepared run: ``full`` and ``lora`` on a GPU in bfloat16, and the same briefly on CPU.

    python benchmarks/gpu_check.py                         # GPU: 300 steps per case, then 20 CPU steps per case
    python benchmarks/gpu_check.py --cpu-only --steps 5    # smoke check of this script on a machine without a GPU
    python benchmarks/gpu_check.py --profile full --steps 30 --trace step.json   # where a step's time goes

No network: the models are written here into a temporary folder (about 50 MB of weights in all) —

- ``minilm-bf16``: tunelab's built-in minilm (all-MiniLM-L6-v2, 22.7 M parameters) saved in bfloat16;
- ``tiny-llama``: a randomly initialised 2-block Llama (hidden 64) on minilm's tokenizer, saved in bfloat16

— and the data is the built-in ``rotten-tomatoes`` (classification). Each case (model × strategy) trains
through :func:`tunelab.run.training.train` with ``--precision`` left unset, so the GPU runs show the
default precision there (bf16 on Ampere or later) and the CPU runs fp32. The CPU cases run in a
subprocess with ``CUDA_VISIBLE_DEVICES=""``. Printed per case: device, precision, optimizer steps,
samples/s (training only), peak memory (CUDA: peak allocated, reset per case; CPU: the peak RSS of the
process so far, so it never falls from one CPU case to the next) and the test
accuracy on up to 256 test examples. A random tiny Llama stays near chance; it checks the decoder path,
not quality.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

STRATEGIES = ("full", "lora")
DATA = "rotten-tomatoes"
EVAL_SAMPLES = 256


def prepare_models(folder: Path) -> dict[str, Path]:
    """minilm saved in bfloat16, and a tiny random Llama on its tokenizer (also bfloat16)."""
    import torch
    from transformers import AutoModel, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunelab.models import resolve_model

    source = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(source)
    minilm = folder / "minilm-bf16"
    AutoModel.from_pretrained(source, dtype=torch.bfloat16).save_pretrained(minilm)
    tokenizer.save_pretrained(minilm)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id, tie_word_embeddings=True)
    llama = folder / "tiny-llama"
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(llama)
    tokenizer.save_pretrained(llama)
    return {"minilm-bf16": minilm, "tiny-llama": llama}


def run_case(name: str, model: Path, strategy: str, steps: int, batch: int, work: Path) -> dict:
    """Train one case for about ``steps`` optimizer steps; its measurements as one row."""
    import torch

    from tunelab import TrainConfig
    from tunelab.run.training import train

    n_train = min(3404, steps * batch)  # rotten-tomatoes has 3,404 training examples
    config = TrainConfig(model=str(model), data=DATA, strategy=strategy, batch_size=batch,
                         max_train_samples=n_train, epochs=steps * batch / n_train, max_eval_samples=EVAL_SAMPLES,
                         max_length=128, save_steps=10**6, out=str(work / f"{name}-{strategy}"), overwrite=True,
                         cache_dir=str(work / "cache"))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    record = train(config, progress=False)
    ti = record["train_info"]
    return {
        "model": name, "strategy": strategy, "device": "cuda" if torch.cuda.is_available() else "cpu",
        "precision": ti["precision"], "steps": math.ceil(n_train / batch * config.epochs),
        "samples_per_s": ti["samples_per_s"], "peak_memory_mb": ti["peak_memory_mb"], "memory_kind": ti["memory_kind"],
        "test_accuracy": record["metrics"]["test"].get("accuracy"), "wall_s": round(time.perf_counter() - t0, 1),
    }


def run_all(steps: int, batch: int, work: Path) -> list[dict]:
    models = prepare_models(work)
    return [run_case(name, path, strategy, steps, batch, work) for name, path in models.items() for strategy in STRATEGIES]


def cpu_rows(steps: int, batch: int) -> list[dict]:
    """The CPU cases, in a subprocess that sees no GPU."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p))
    out = subprocess.run([sys.executable, __file__, "--cpu-only", "--steps", str(steps), "--batch-size", str(batch),
                          "--json"], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"gpu_check: the CPU cases failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        return []
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile_case(strategy: str, steps: int, batch: int, work: Path, trace: Path | None) -> None:
    """minilm (the bf16 copy) trained ``steps`` steps under torch.profiler: where a step's time goes (the top
    operators by their own CPU time, and the accelerator's total against the wall), so that a GPU step far slower
    than its arithmetic can be explained in one run. ``trace``: a Chrome trace (chrome://tracing) written there."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    models = prepare_models(work)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        row = run_case("minilm-bf16", models["minilm-bf16"], strategy, steps, batch, work)
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    device_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events)
    print(f"profile: minilm {strategy}, {row['steps']} steps in {wall:.1f} s wall (training, evaluation and saving), "
          f"{row['samples_per_s']:.1f} samples/s in training; accelerator busy {device_us / 1e6:.2f} s")
    print(events.table(sort_by="self_cpu_time_total", row_limit=25))
    if trace is not None:
        prof.export_chrome_trace(str(trace))
        print(f"profile: trace written to {trace}")


def show(rows: list[dict]) -> None:
    head = f"{'model':<12} {'strategy':<8} {'device':<6} {'prec':<5} {'steps':>5} {'samples/s':>10} {'peak MB':>9} {'kind':<5} {'test acc':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        acc = "-" if r["test_accuracy"] is None else f"{r['test_accuracy']:.3f}"
        print(f"{r['model']:<12} {r['strategy']:<8} {r['device']:<6} {r['precision']:<5} {r['steps']:>5} "
              f"{r['samples_per_s']:>10.1f} {r['peak_memory_mb']:>9.0f} {r['memory_kind']:<5} {acc:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU cases (a machine without a GPU)")
    parser.add_argument("--steps", type=int, help="optimizer steps per case (default: 300 on the GPU, 20 on CPU)")
    parser.add_argument("--cpu-steps", type=int, default=20, help="optimizer steps per CPU case after the GPU ones")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the CPU subprocess's output
    parser.add_argument("--profile", metavar="STRATEGY", help="only profile minilm with STRATEGY (e.g. full) for "
                                                              "--steps steps (default 30) under torch.profiler")
    parser.add_argument("--trace", type=Path, help="with --profile: write a Chrome trace here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.profile:
        from tunelab.run.isolate import quiet_libraries

        quiet_libraries()
        with tempfile.TemporaryDirectory(prefix="tunelab-gpu-profile-") as tmp:
            profile_case(args.profile, args.steps or 30, args.batch_size, Path(tmp), args.trace)
        return 0
    import torch

    from tunelab.run.isolate import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="tunelab-gpu-check-") as tmp:
        if args.cpu_only:
            rows = run_all(args.steps or 20, args.batch_size, Path(tmp))
        elif not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU here: run with --cpu-only for the CPU smoke check", file=sys.stderr)
            return 2
        else:
            rows = run_all(args.steps or 300, args.batch_size, Path(tmp))
            print(f"GPU: {torch.cuda.get_device_name()}, bf16 supported: {torch.cuda.is_bf16_supported()}")
            show(rows)  # before the CPU cases, so that their failure loses nothing
            print(flush=True)
            rows += cpu_rows(args.cpu_steps, args.batch_size)
    if args.json:
        print(json.dumps(rows))
    else:
        show(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
