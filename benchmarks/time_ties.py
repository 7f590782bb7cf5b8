"""Could training-time noise flip the after-training pick among strategies the data cannot separate? (no training)

    .venv/bin/python benchmarks/time_ties.py

The pick is the cheapest contender by mean ``train_time_s`` over its seeds (``choose._cost_key``). From the run
records of ``results/verdict`` (16 tasks): the gap between the cheapest and the next-cheapest contender; the spread of
one strategy's training time over its seeds (coefficient of variation, range over mean); and over every way of taking
one seed's time per contender (what a one-seed run could have measured), how often the cheapest differs from the pick.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "verdict"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    spreads, flips, draws = [], 0, 0
    print("| task | pick | cheapest contender (s) | next (s) | gap | per-seed times |")
    print("|---|---|---|---|---|---|")
    for path in sorted(RESULTS.glob("*.json")):
        task = json.loads(path.read_text())
        if path.name.endswith(".planned.json") or "task" not in task:
            continue
        times: dict[str, list[float]] = {}
        for f in (RESULTS / task["task"] / "runs" / "runs").glob("*/metrics.json"):
            record = json.loads(f.read_text())
            if (t := (record.get("train_info") or {}).get("train_time_s")):
                times.setdefault(record["config"]["strategy"], []).append(t)
        spreads += [(np.std(v, ddof=1) / np.mean(v), np.ptp(v) / np.mean(v), task["task"], s)
                    for s, v in times.items() if len(v) > 1]
        contenders = [s for s in task.get("contenders_paired") or task["contenders"] if s in times]
        contenders.sort(key=lambda s: np.mean(times[s]))
        pick = task.get("after_training_paired") or task["after_training"]
        for combo in itertools.product(*(times[s] for s in contenders)):
            draws += 1
            flips += contenders[int(np.argmin(combo))] != contenders[0]
        if len(contenders) > 1:
            a, b = contenders[:2]
            ta, tb = np.mean(times[a]), np.mean(times[b])
            print(f"| {task['task']} | {pick} | {a} {ta:.1f} | {b} {tb:.1f} | {100 * (tb / ta - 1):.1f} % | "
                  f"{[round(t, 1) for t in times[a]]} / {[round(t, 1) for t in times[b]]} |")
    cv, rng = np.array([s[0] for s in spreads]), np.array([s[1] for s in spreads])
    worst = max(spreads)
    print(f"\n{len(spreads)} strategy-task groups with several seeds: time CV median {np.median(cv):.3f}, "
          f"90th percentile {np.quantile(cv, 0.9):.3f}, max {cv.max():.3f} ({worst[3]} on {worst[2]}); "
          f"range / mean median {np.median(rng):.3f}, 90th percentile {np.quantile(rng, 0.9):.3f}, max {rng.max():.3f}")
    print(f"one seed's time per contender: the cheapest differs from the pick's in {flips} of {draws} draws")
    gaps = []
    for path in sorted(RESULTS.parent.glob("verdict*/*.json")):  # every sitting's summaries: mean times only
        task = json.loads(path.read_text())
        if path.name.endswith(".planned.json") or "task" not in task or "strategies" not in task:
            continue
        cost = {s: v["train_time_s"] for s, v in task["strategies"].items() if v.get("train_time_s")}
        contenders = sorted((s for s in task.get("contenders_paired") or task.get("contenders") or [] if s in cost),
                            key=cost.get)
        if len(contenders) > 1:
            pick = task.get("after_training_paired") or task["after_training"]
            gaps.append((cost[contenders[1]] / cost[contenders[0]] - 1, pick == contenders[0], str(path)))
    print(f"every sitting's summaries: the pick is the cheapest contender in {sum(g[1] for g in gaps)} of {len(gaps)}; "
          f"smallest gap to the next {100 * min(gaps)[0]:.1f} % ({min(gaps)[2]})")


if __name__ == "__main__":
    main()
