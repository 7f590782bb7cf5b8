"""Would a seed-noise term in ``planner.predict_final`` undo any recorded cut before the full data? (no training)

    PYTHONPATH=src .venv/bin/python benchmarks/rung_noise_cuts.py

A prediction from one rung carries the examples' interval of that one run (one seed), not the spread between seeds.
For each task's planned pass (as ``seed_rung_replay.py`` and ``bench_verdict.py evaluate`` read them), every recorded
stop is counted by reason and rung. ``halved`` cuts rank by estimate and never read an interval, so no noise term can
change them; the full data's first-seed rung is ``seed_rung_replay.py``'s. Each ``behind`` / ``dominated`` stop
before the full data is re-decided with both predictions' ends widened by one seed's spread: half-width ``h`` ->
``sqrt(h² + (1.96 σ)²)``, ``σ`` the seed-spread prior of ``seed_rung_replay.pooled_seed_sd`` (the task's dataset left
out), and whether the stopped strategy is among the task's exhaustive contenders (only then could keeping it change
the pick).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_verdict  # noqa: E402
import seed_rung_replay as replay  # noqa: E402

Z = 1.96


def widen(estimate: float, end: float, sigma: float) -> float:
    h = end - estimate
    return estimate + math.copysign(math.sqrt(h * h + (Z * sigma) ** 2), h if h else 1.0)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    plans = bench_verdict.planned_records(bench_verdict.RESULTS, [replay.HERE / f for f in bench_verdict.PLANNED_SITTINGS])
    tasks = [p["task"] for p in plans]
    counts: dict[str, list[int]] = {}
    for plan in plans:
        data = plan["task"].split("-", 1)[1].rsplit("-", 1)[0]
        sigma = replay.pooled_seed_sd(tasks, data)
        summary = json.loads((bench_verdict.RESULTS / f"{plan['task']}.json").read_text())
        contenders = set(summary.get("contenders_paired") or summary.get("contenders") or [])
        for stop in plan.get("stopped", []):
            full = stop.get("data_fraction") == 1.0
            key = f"{stop.get('reason')} {'at the full data' if full else 'before it'}"
            counts.setdefault(key, [0, 0, 0])[0] += 1
            p, lead = stop.get("prediction"), stop.get("leader")
            if full or stop.get("reason") not in ("behind", "dominated") or not p or not lead:
                continue
            optimistic = widen(p["estimate"], p["optimistic"], sigma)
            pessimistic = widen(lead["estimate"], lead["pessimistic"], sigma)
            undone = optimistic > pessimistic if stop["reason"] == "dominated" else optimistic >= pessimistic
            counts[key][1] += 1
            counts[key][2] += undone
            print(f"{plan['task']}: {stop['strategy']} {stop['reason']} at fraction {stop['data_fraction']:.3g}, optimistic "
                  f"{p['optimistic']:.3f} against {lead['strategy']}'s pessimistic {lead['pessimistic']:.3f}; widened "
                  f"(σ {100 * sigma:.2f} points) {optimistic:.3f} against {pessimistic:.3f}: "
                  f"{'undone' if undone else 'still cut'}; an exhaustive contender: {stop['strategy'] in contenders}")
    for key, (n, tried, undone) in sorted(counts.items()):
        print(f"{key}: {n} stops" + (f", {undone} of them undone by the widening" if tried else ", not re-decided here"))


if __name__ == "__main__":
    main()
