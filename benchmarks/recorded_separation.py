"""The after-training recommendation of every recorded verdict-benchmark task, from its run records (no training):
the pick, its contenders, ``examples_to_separate`` and the "cannot separate" reason, as JSON to compare two commits.

    PYTHONPATH=<worktree at the parent>/src .venv/bin/python benchmarks/recorded_separation.py before.json
    .venv/bin/python benchmarks/recorded_separation.py after.json   # then compare the two files
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tunelab.advice.choose import recommend_from_results
from tunelab.run.record import RunRecord

RESULTS = Path(__file__).resolve().parent / "results" / "verdict"


def main() -> None:
    out = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.name.endswith(".planned.json"):
            continue
        task = json.loads(path.read_text()).get("task")
        records = [RunRecord.read(f) for f in sorted((RESULTS / str(task) / "runs" / "runs").glob("*/metrics.json"))]
        if not task or not records:
            continue
        rec = recommend_from_results(records)
        why = [r for r in rec["reasons"] if r.startswith("The data cannot separate")]
        out[task] = {"pick": rec["strategy"], "contenders": rec.get("contenders"),
                     "examples_to_separate": rec.get("examples_to_separate"), "why": why[0] if why else None}
        print(task, out[task]["pick"], out[task]["examples_to_separate"], flush=True)
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
