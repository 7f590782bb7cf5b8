"""The after-training rule against two alternatives, recomputed from the verdict benchmark's saved runs.

Read-only, no training: for each finished task of ``benchmarks/results/verdict`` (its run records and saved
per-example outputs, git-ignored: run ``bench_verdict.py run`` first) it recomputes the after-training pick

* ``now``: the cheapest strategy not distinguishable from the validation-best at 5 % (Holm-adjusted), the rule
  issue 15 specifies;
* ``unadjusted``: the same without Holm's adjustment;
* ``equivalence-1`` / ``equivalence-2``: the cheapest strategy whose paired 95 % interval of "how much worse
  than the best" ends below 1 (or 2) points (a TOST-like equivalence margin),

and prints each pick's regret (test points lost against the validation-best) and whether the paired test on
the test split finds it worse (``bench_verdict.regret`` and ``bench_verdict.worse_on_test``).

    python benchmarks/after_training_rules.py [--results benchmarks/results/verdict]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_verdict as bv  # noqa: E402


def _identity(p_values):
    return np.asarray(p_values, dtype=float)


def picks(records: list) -> dict[str, str]:
    """Each rule's pick from one task's run records."""
    import tunelab.advice.stats as stats
    from tunelab.advice.choose import recommend_from_results

    holm = stats.holm  # verdict reaches it through stats.holm_against_best
    rec = recommend_from_results(records)
    out = {"now": rec["strategy"]}
    stats.holm = _identity
    try:
        out["unadjusted"] = recommend_from_results(records)["strategy"]
    finally:
        stats.holm = holm
    for margin in (1.0, 2.0, 3.0, 5.0):
        within = [row for row in rec["ranking"] if row.get("mean") is not None and (
            (row.get("versus_best") or {}).get("reason") == "best"
            or ((row.get("versus_best") or {}).get("gap_high") is not None and 100 * row["versus_best"]["gap_high"] <= margin))]
        out[f"equivalence-{margin:g}"] = min(within, key=lambda row: row.get("train_time_s") or 0.0)["strategy"]
    return out


def main() -> None:
    from tunelab.run.record import RunRecord

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "verdict")
    results = parser.parse_args().results
    rows = []
    for path in sorted(results.glob("*.json")):
        if path.name == "summary.json" or path.name.endswith(".planned.json"):
            continue
        task = json.loads(path.read_text())
        if "validation_best" not in task:
            continue
        records = [RunRecord.read(p) for p in sorted((results / task["task"] / "runs" / "runs").glob("*/metrics.json"))]
        row = {rule: (pick, bv.regret(task, pick), bv.worse_on_test(results, task["task"], pick, task["validation_best"])["worse"])
               for rule, pick in picks(records).items()}
        rows.append(row)
        print(task["task"], f"validation-best {task['validation_best']}:",
              "; ".join(f"{rule} {pick} ({reg:+.2f}{', worse on test' if worse else ''})" for rule, (pick, reg, worse) in row.items()))
    for rule in rows[0] if rows else []:
        print(f"{rule}: mean regret {np.mean([r[rule][1] for r in rows]):.2f} points, worse on test on "
              f"{sum(r[rule][2] for r in rows)} of {len(rows)} tasks")


if __name__ == "__main__":
    main()
