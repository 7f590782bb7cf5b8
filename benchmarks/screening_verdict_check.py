"""Would the verdict's pick after a round of less data still be a contender at the full data? (read-only)

The planner (session 44) lets the verdict's pick lead the cut after a round of less data where the learning rates
measured keep it level with the verdict's best. This script asks the simpler question behind that rule on the verdict
benchmark's own records, with no training: the tasks of one dataset at growing label budgets (50 -> 100 -> 300 ->
1,000 -> all) stand in for a planned comparison's rounds. For each pair of consecutive budgets it takes the smaller
budget's first seed as a round of less data, and reports

* the verdict's pick on those runs (the cheapest strategy its paired comparison cannot separate from the best) and the
  best estimate (the strategy successive halving keeps first);
* whether each is a contender at the larger budget (today's verdict over all its seeds: the pick, or a strategy the
  paired comparison cannot separate from the best), and what each costs there (its runs' wall time).

The stand-in is imperfect: the benchmark trains smaller budgets for more epochs (30 at 50 labels, 3 at 1,000), where a
planned comparison's rounds keep the final round's epochs.

    .venv/bin/python benchmarks/screening_verdict_check.py [--results benchmarks/results/verdict]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_verdict as bv  # noqa: E402

#: Each dataset's label budgets in the order a comparison's rounds would grow them.
CHAINS = {"minilm-rotten-tomatoes": ["50", "100", "300", "1000", "all"],
          "minilm-bbc-news": ["50", "100", "300", "1000", "all"],
          "minilm-debates-2016": ["50", "100", "300", "all"]}
CONTENDING = ("best", "not_distinguishable", "within_tolerance")


def _records(results: Path, task: str) -> list:
    from tunelab.run.record import RunRecord

    return [RunRecord.read(p) for p in sorted((results / task / "runs" / "runs").glob("*/metrics.json"))]


def rows(results: Path) -> list[dict]:
    """One row per pair of consecutive budgets whose records exist."""
    from tunelab.advice.choose import recommend_from_results

    out = []
    for base, budgets in CHAINS.items():
        for small, big in zip(budgets, budgets[1:]):
            before, after = _records(results, f"{base}-{small}"), _records(results, f"{base}-{big}")
            if not before or not after:
                continue
            first = min(r.config["seed"] for r in before)
            screen = [r for r in before if r.config["seed"] == first]
            pick = recommend_from_results(screen)["strategy"]
            value = {r.run_info.strategy: r.metrics.value("validation", "accuracy") for r in screen}
            cost = {r.run_info.strategy: r.train_info.train_time_s for r in screen}
            best = max(value, key=lambda s: (value[s], -cost[s]))
            verdict = recommend_from_results(after)
            contenders = [v["strategy"] for v in verdict["ranking"] if (v.get("versus_best") or {}).get("reason") in CONTENDING]
            seconds: dict[str, float] = {}
            for r in after:
                seconds[r.run_info.strategy] = seconds.get(r.run_info.strategy, 0.0) + r.run_info.wall_time_s
            out.append({"data": base, "from": small, "to": big, "pick": pick, "best_estimate": best,
                        "final_pick": verdict["strategy"], "contenders": contenders,
                        "pick_contends": pick in contenders, "best_contends": best in contenders,
                        "pick_s": seconds.get(pick), "best_s": seconds.get(best)})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=bv.RESULTS, help="the benchmark's task records")
    found = rows(parser.parse_args(argv).results)
    for r in found:
        print(f"{r['data']} {r['from']} -> {r['to']}: verdict's pick {r['pick']} (contender: {r['pick_contends']}, "
              f"{r['pick_s']:.0f} s), best estimate {r['best_estimate']} (contender: {r['best_contends']}, "
              f"{r['best_s']:.0f} s); at {r['to']}: {r['final_pick']}, contenders {', '.join(r['contenders'])}")
    if found:
        print(f"the verdict's pick contends on {sum(r['pick_contends'] for r in found)} of {len(found)}, the best estimate "
              f"on {sum(r['best_contends'] for r in found)} of {len(found)}; their runs at the larger budget: "
              f"{sum(r['pick_s'] for r in found):.0f} s against {sum(r['best_s'] for r in found):.0f} s")


if __name__ == "__main__":
    main()
