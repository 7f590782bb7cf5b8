"""The after-training recommendation of every recorded verdict-benchmark task, from its run records (no training):
the pick, its contenders, ``examples_to_separate`` and the "cannot separate" reason, as JSON to compare two commits.

    PYTHONPATH=<worktree at the parent>/src .venv/bin/python benchmarks/recorded_separation.py before.json
    .venv/bin/python benchmarks/recorded_separation.py after.json   # then compare the two files
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunelab.advice.choose import recommend_from_results
from tunelab.run.record import RunRecord

RESULTS = Path(__file__).resolve().parent / "results" / "verdict"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the JSON file to write (task -> pick, contenders, ...)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="default: benchmarks/results/verdict")
    args = parser.parse_args(argv)
    out = {}
    for path in sorted(args.results.glob("*.json")):
        if path.name.endswith(".planned.json") or path.name == "summary.json":
            continue
        task = json.loads(path.read_text()).get("task")
        records = [RunRecord.read(f) for f in sorted((args.results / str(task) / "runs" / "runs").glob("*/metrics.json"))]
        if not task or not records:
            continue
        rec = recommend_from_results(records)
        why = [r for r in rec["reasons"] if r.startswith("The data cannot separate")]
        out[task] = {"pick": rec["strategy"], "contenders": rec.get("contenders"),
                     "examples_to_separate": rec.get("examples_to_separate"), "why": why[0] if why else None}
        print(task, out[task]["pick"], out[task]["examples_to_separate"], flush=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
