"""Does a change to the verdict's rule move a recorded planned pass? Read-only, from the run records in git.

For each task's latest planned pass (``results/verdict-s25`` ... ``results/verdict``, the last folder wins), with the
code on ``PYTHONPATH``: the verdict at its full data's first seed, where several strategies were alive with seeds to
come (the pick that the cut keeps first, and the strategies shown worse), and the verdict over its finalists; both
from the exhaustive records of the same runs (same strategy, seed, fraction and settings). Run it under the old and
the new code and compare the two outputs:

    PYTHONPATH=<worktree at the old commit>/src .venv/bin/python benchmarks/verdict_rule_check.py > old.json
    .venv/bin/python benchmarks/verdict_rule_check.py > new.json
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.advice.choose import recommend_from_results
from tunelab.run.record import RunRecord

HERE = Path(__file__).parent / "results"
FOLDERS = ["verdict-s25", "verdict-s26", "verdict-s32", "verdict-s32b", "verdict-s33", "verdict-s34", "verdict-s35",
           "verdict"]


def _records(task: str, strategies: list[str], first_seed_only: bool) -> list[RunRecord]:
    runs = HERE / "verdict" / task / "runs" / "runs"
    out = []
    for s in strategies:
        found = sorted(f for f in runs.glob(f"{s}*/metrics.json") if f.parent.name == s or f.parent.name.startswith(f"{s}-s"))
        out += [RunRecord.read(f) for f in (found[:1] if first_seed_only else found)]
    return out


def main() -> None:
    latest = {q.name: q for f in FOLDERS for q in sorted((HERE / f).glob("*.planned.json"))}
    out = {}
    for path in latest.values():
        plan = json.loads(path.read_text())
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
