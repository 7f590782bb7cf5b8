"""Peak memory and training time of PEFT against full fine-tuning, each run in a fresh process.

Runs the cases one after another (never two at once), each through ``tunelab.run.training.train`` in
its own subprocess, so that its peak RSS and time are its own, and prints peak RSS, train time and test
accuracy per case and the ratios of every case to the first one of the same model. The settings are
``bench_cache.py``'s: rotten-tomatoes, 3 epochs, batch 32, max length 128, float32, no forgetting
measure; smollm2 uses 400 training rows of at most 64 tokens.

A case is ``model:strategy`` followed by ``+field=value`` overrides of :class:`tunelab.TrainConfig`:

    .venv/bin/python benchmarks/bench_peft_memory.py                     # minilm:full, minilm:lora, smollm2:lora
    .venv/bin/python benchmarks/bench_peft_memory.py --cases minilm:full,minilm:lora,minilm:lora+lora_dropout=0.1
    .venv/bin/python benchmarks/bench_peft_memory.py --cases smollm2:lora --seeds 42,1,2
    .venv/bin/python benchmarks/bench_peft_memory.py --epochs 1 --max-train-samples 1000   # a quicker look

Timing on a shared machine is noisy: compare cases measured back to back in one invocation; peak RSS
is the robust number. Results: a table on stdout and ``benchmarks/results/bench_peft_memory-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CASES = "minilm:full,minilm:lora,smollm2:lora"
SETTINGS = {"data": "rotten-tomatoes", "epochs": 3, "batch_size": 32, "max_length": 128, "precision": "fp32"}
SMOLLM2 = {"max_train_samples": 400, "max_length": 64}


def parse_case(case: str) -> tuple[str, str, dict]:
    head, *overrides = case.split("+")
    model, strategy = head.split(":")
    values = {}
    for item in overrides:
        key, value = item.split("=", 1)
        values[key] = json.loads(value) if value not in ("", "None") else None
    return model, strategy, values


def worker(spec: dict) -> dict:
    from tunelab.config import TrainConfig
    from tunelab.run.training import train

    record = train(TrainConfig.from_dict(spec), progress=False)
    info = record["train_info"]
    return {
        "train_time_s": info["train_time_s"],
        "eval_time_s": info["eval_time_s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test_accuracy": record["metrics"]["test"].get("accuracy"),
        "trainable_share": info["trainable_share"],
    }


def run(case: str, seed: int, tmp: Path, *, epochs: float, max_train_samples: int | None) -> dict:
    model, strategy, overrides = parse_case(case)
    spec = {**SETTINGS, "epochs": epochs, "max_train_samples": max_train_samples,
            **(SMOLLM2 if model == "smollm2" else {}), "model": model, "strategy": strategy,
            "seed": seed, "forgetting": False, "overwrite": True, **overrides}
    slug = case.replace(":", "-").replace("+", "_").replace("=", "")
    spec["out"] = str(tmp / f"{slug}-s{seed}")
    spec["cache_dir"] = str(tmp / f"features-{slug}-s{seed}")
    spec_path, out_path = tmp / "spec.json", tmp / "result.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", str(spec_path), str(out_path)], capture_output=True,
                          text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"{case} failed ({proc.returncode}):\n" + "\n".join(proc.stderr.splitlines()[-15:]))
    return {"case": case, "seed": seed, "wall_s": time.perf_counter() - t0, **json.loads(out_path.read_text())}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        Path(argv[2]).write_text(json.dumps(worker(json.loads(Path(argv[1]).read_text()))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=DEFAULT_CASES, help=f"comma list of model:strategy[+field=value...] (default {DEFAULT_CASES})")
    p.add_argument("--seeds", default="42", help="comma list: every case runs once per seed")
    p.add_argument("--epochs", type=float, default=SETTINGS["epochs"])
    p.add_argument("--max-train-samples", type=int, default=None, help="fewer training rows (smollm2 keeps its 400)")
    p.add_argument("--results", default=str(HERE / "results"))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict] = []
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"bench_peft_memory-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    with tempfile.TemporaryDirectory(prefix="bench-peft-") as tmp:
        for seed in seeds:
            for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
                print(f"[{case} seed {seed}] ...", flush=True)
                try:
                    row = run(case, seed, Path(tmp), epochs=args.epochs, max_train_samples=args.max_train_samples)
                except RuntimeError as exc:  # one failed case does not lose the others
                    print(f"  FAILED: {exc}", flush=True)
                    continue
                rows.append(row)
                path.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
                print(f"  peak RSS {row['peak_rss_mb']:,.0f} MB, train {row['train_time_s']:.1f} s, "
                      f"test accuracy {row['test_accuracy']:.4f}", flush=True)
    print(f"\n{'case':48} {'seed':>4} {'peak RSS MB':>12} {'train s':>8} {'test acc':>8} {'RSS ratio':>9} {'time ratio':>10}")
    for row in rows:
        first = next(r for r in rows if parse_case(r["case"])[0] == parse_case(row["case"])[0] and r["seed"] == row["seed"])
        print(f"{row['case']:48} {row['seed']:>4} {row['peak_rss_mb']:>12,.0f} {row['train_time_s']:>8.1f} "
              f"{row['test_accuracy']:>8.4f} {row['peak_rss_mb'] / first['peak_rss_mb']:>9.2f} "
              f"{row['train_time_s'] / first['train_time_s']:>10.2f}")
    print("ratios: each case against the first case of the same model and seed; times are noisy on a shared machine")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
