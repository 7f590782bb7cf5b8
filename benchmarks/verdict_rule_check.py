"""Does a change to the verdict's rule move a recorded planned pass? Read-only, from the run records in git.

For each task's latest planned pass (``results/verdict``, then ``results/verdict-s25`` ... ``-s35``, the last folder
wins, as ``bench_verdict.py evaluate --planned-from`` reads them for the headline), with the
code on ``PYTHONPATH``: the verdict at its full data's first seed, where several strategies were alive with seeds to
come (the pick that the cut keeps first, and the strategies shown worse), and the verdict over its finalists; both
from the exhaustive records of the same runs (same strategy, seed, fraction and settings). Run it under the old and
the new code and compare the two outputs:

    PYTHONPATH=<worktree at the old commit>/src .venv/bin/python benchmarks/verdict_rule_check.py > old.json
    .venv/bin/python benchmarks/verdict_rule_check.py > new.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.advice.choose import recommend_from_results
from tunelab.run.record import RunRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_verdict  # noqa: E402

HERE = bench_verdict.RESULTS.parent


def _records(task: str, strategies: list[str], first_seed_only: bool) -> list[RunRecord]:
    runs = HERE / "verdict" / task / "runs" / "runs"
    out = []
    for s in strategies:
        found = sorted(f for f in runs.glob(f"{s}*/metrics.json") if f.parent.name == s or f.parent.name.startswith(f"{s}-s"))
        out += [RunRecord.read(f) for f in (found[:1] if first_seed_only else found)]
    return out


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    out = {}
    for plan in bench_verdict.planned_records(bench_verdict.RESULTS, [HERE / f for f in bench_verdict.PLANNED_SITTINGS]):
        row = {}
        for rnd in plan["rounds"]:
            if rnd["data_fraction"] == 1.0 and not rnd.get("final") and len(rnd["strategies"]) > 1:
                rec = recommend_from_results(_records(plan["task"], rnd["strategies"], True))
                row["first_seed"] = {"alive": rnd["strategies"], "pick": rec["strategy"], "worse": sorted(
                    v["strategy"] for v in rec["ranking"] if (v.get("versus_best") or {}).get("reason") == "worse")}
        finalists = [r for r in plan["rounds"] if r.get("final")][-1]["strategies"] if plan["rounds"] else []
        if len(finalists) > 1:
            row["finalists"] = {"alive": finalists, "pick": recommend_from_results(
                _records(plan["task"], finalists, False))["strategy"]}
        out[plan["task"]] = row
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
