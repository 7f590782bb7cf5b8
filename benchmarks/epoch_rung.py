"""Would a planner rung at a third of the epochs rank the strategies as the end of training does?

Read-only, no training. Successive halving can spend epochs instead of data: train every strategy on the full
data for a third of its epochs (its learning-rate schedule still set for all of them, so that a kept run
resumes from its checkpoint and nothing is trained twice), keep the leaders, finish those. This recomputes what
such a rung would have seen from the verdict benchmark's run records (``benchmarks/results/verdict/<task>/runs``,
git-ignored: run ``bench_verdict.py run`` first): every run records its validation accuracy at each evaluated
epoch, so the accuracy at the evaluation nearest a third of the epochs is what the paused run would have shown.

For each task and seed with all five strategies it prints the strategy that leads at a third of the epochs, the
one that leads at the end (the run's recorded validation accuracy), where the latter ranked at a third, and each
strategy's gain from a third of the epochs to the end; then how often the end's leader leads (or is in the first
two) at a third, and each strategy's median gain.

    python benchmarks/epoch_rung.py [--results benchmarks/results/verdict]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def seed_rows(task_dir: Path) -> list[dict]:
    """One row per seed of a task: each strategy's validation accuracy at a third of the epochs and at the end."""
    by_seed: dict[int, dict[str, tuple[float, float]]] = {}
    for path in sorted(task_dir.glob("runs/runs/*/metrics.json")):
        record = json.loads(path.read_text())
        evaluated = [e for e in record["train_info"].get("epochs", []) if "val_accuracy" in e]
        if not evaluated:
            continue
        epochs = record["train_info"]["num_epochs"]
        third = min(evaluated, key=lambda e: abs(e["epoch"] - epochs / 3))
        final = record["metrics"]["validation"]["accuracy"]
        by_seed.setdefault(record["run_info"]["seed"], {})[record["run_info"]["strategy"]] = (third["val_accuracy"], final)
    rows = []
    for seed, accuracy in sorted(by_seed.items()):
        if len(accuracy) < 5:
            continue
        early = sorted(accuracy, key=lambda s: -accuracy[s][0])
        late = max(accuracy, key=lambda s: accuracy[s][1])
        rows.append({"task": task_dir.name, "seed": seed, "leads_at_third": early[0], "leads_at_end": late,
                     "end_leader_rank_at_third": early.index(late) + 1,
                     "gain": {s: 100 * (a[1] - a[0]) for s, a in accuracy.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "verdict")
    args = parser.parse_args()
    rows = [row for task in sorted(p for p in args.results.iterdir() if p.is_dir()) for row in seed_rows(task)]
    if not rows:
        raise SystemExit(f"no run records under {args.results}/<task>/runs/runs: run bench_verdict.py run first")
    for r in rows:
        gains = ", ".join(f"{s} {g:+.1f}" for s, g in sorted(r["gain"].items()))
        print(f"{r['task']:30s} seed {r['seed']}  leads at a third: {r['leads_at_third']:7s} at the end: "
              f"{r['leads_at_end']:7s} (ranked {r['end_leader_rank_at_third']} at a third)  gain, points: {gains}")
    n = len(rows)
    print(f"the end's leader leads at a third of the epochs: {sum(r['end_leader_rank_at_third'] == 1 for r in rows)} of {n}")
    print(f"the end's leader is in the first two at a third: {sum(r['end_leader_rank_at_third'] <= 2 for r in rows)} of {n}")
    for strategy in sorted({s for r in rows for s in r["gain"]}):
        gains = [r["gain"][strategy] for r in rows if strategy in r["gain"]]
        print(f"{strategy:7s} median gain from a third of the epochs to the end: {statistics.median(gains):+.1f} points "
              f"(range {min(gains):+.1f} to {max(gains):+.1f}, n={len(gains)})")


if __name__ == "__main__":
    main()
