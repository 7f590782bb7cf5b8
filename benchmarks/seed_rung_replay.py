"""At the full data's first seed, does a cut that allows for seed noise keep the planned pick right, and at what cost?

Read-only, no training: an estimate from the run records in git. For each task's latest planned pass
(``results/verdict``, then ``results/verdict-s25`` ... ``-s35``, the last folder wins, as ``bench_verdict.py
evaluate --planned-from`` reads them for the headline), the strategies
alive at its full data's first-seed rung are taken as recorded (the rounds before it are not replayed). The rung is
then replayed under each rule on the *exhaustive* records of the same runs (same strategy, seed, fraction, settings:
the planned pass's own runs were not kept): each strategy's first seed measured as ``measurements_from_results`` does,
the verdict on those runs as the runner asks it, the costs of the next run each strategy's first-seed wall time.
The finalists' pick is today's verdict over every seed of the strategies the rule keeps (a lone finalist is picked).
It agrees when it is the task's exhaustive pick or one of its contenders (today's verdict over every strategy).

Time: the planned pass's recorded time, less the recorded finalists' other seeds, plus the kept strategies' other
seeds, each seed's wall time from the exhaustive record; over the recorded exhaustive time. Tasks without such a rung
(one seed, or one strategy left) keep their recorded pick and ratio.

    .venv/bin/python benchmarks/seed_rung_replay.py            # the table; --json for the rows
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from tunelab.advice.choose import recommend_from_results
from tunelab.compare.planner import Measurement, Prediction, halve, measurements_from_results
from tunelab.run.record import RunRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_verdict  # noqa: E402

HERE = bench_verdict.RESULTS.parent
ETA = 3.0  # the planner's default halving
Z = 1.96
RULES = ["today", "dominated-if-shown-worse", "keep-contenders", "seed-widened-dominated", "seed-widened"]


def _runs(task: str, strategy: str) -> list[RunRecord]:
    runs = bench_verdict.RESULTS / task / "runs" / "runs"
    found = sorted(f for f in runs.glob(f"{strategy}*/metrics.json")
                   if f.parent.name == strategy or f.parent.name.startswith(f"{strategy}-s"))
    return [RunRecord.read(f) for f in found]


def _pick(records: list[RunRecord], strategies: list[str]) -> str:
    if len(strategies) == 1:
        return strategies[0]
    return recommend_from_results([r for r in records if r.run_info.strategy in strategies])["strategy"]


def seed_sd(task: str, strategy: str) -> float | None:
    values = [r.metrics.value("validation", "accuracy") for r in _runs(task, strategy)]
    return statistics.stdev(values) if len(values) > 1 else None


def pooled_seed_sd(tasks: list[str], leave_out_data: str | None) -> float:
    """The root mean square of the seeds' standard deviations of every strategy over ``tasks`` (those with 3 seeds),
    leaving out the tasks whose name holds ``leave_out_data``."""
    sds = [sd for t in tasks if leave_out_data is None or leave_out_data not in t for s in bench_verdict.STRATEGIES
           if (sd := seed_sd(t, s)) is not None]
    return math.sqrt(sum(sd * sd for sd in sds) / len(sds))


def kept_after_first_seed(ms: dict[str, Measurement], costs: dict[str, float], pick: str, contenders: set[str],
                          worse: set[str], rule: str, prior_sd: float = 0.0) -> list[str]:
    """The strategies a rule keeps after the full data's first seed, from each one's first-seed measurement (``ms``),
    the cost of its next run, and the verdict on those runs: its ``pick``, its ``contenders`` and the strategies its
    paired comparison shows ``worse`` than the best. ``today``: the planner's cut (:func:`halve` at the full data with
    the verdict's pick first). The others undo some of today's cuts:

    - ``dominated-if-shown-worse``: a *dominated* strategy goes on unless the paired comparison shows it worse;
    - ``keep-contenders``: every strategy the verdict cannot separate from the best goes on;
    - ``seed-widened-dominated`` / ``seed-widened``: a *dominated* cut (or every cut) needs the gap to the strategy that
      put it out to exceed ``Z * sqrt(se_examples**2 + 2 * prior_sd**2)``: the examples' part from the two runs'
      intervals (unpaired, so wider than the paired test's), the seeds' part two runs' worth of a seed-spread prior.
    """
    preds = {s: Prediction(s, "accuracy", 1.0, m.value, m.high, m.low, "", 1.0, m.value) for s, m in ms.items()}
    cut = halve(preds, "accuracy", ETA, costs, at_full_data=True, first=pick)

    def separable(s: str, other: str) -> bool:
        a, b = ms[s], ms[other]
        se_examples = math.hypot((a.high - a.low) / (2 * Z), (b.high - b.low) / (2 * Z))
        return b.value - a.value > Z * math.sqrt(se_examples ** 2 + 2 * prior_sd ** 2)

    undo = {
        "today": lambda s, why, other: False,
        "dominated-if-shown-worse": lambda s, why, other: why == "dominated" and s not in worse,
        "keep-contenders": lambda s, why, other: s in contenders,
        "seed-widened-dominated": lambda s, why, other: why == "dominated" and not separable(s, other),
        "seed-widened": lambda s, why, other: not separable(s, other),
    }[rule]
    return [s for s in ms if s not in cut or undo(s, *cut[s])]


def other_seeds_s(task: str, strategies: list[str], seeds: int) -> float:
    """The exhaustive records' wall time of ``strategies``' seeds after the first (up to ``seeds``)."""
    return sum(r.run_info.wall_time_s or 0.0 for s in strategies for r in _runs(task, s)[1:seeds])


def rung(task: str, alive: list[str], rule: str, prior_sd: float) -> list[str]:
    """:func:`kept_after_first_seed` on the exhaustive records of ``task``'s first seed of each of ``alive``."""
    firsts = [_runs(task, s)[0] for s in alive]
    ms = {m.strategy: m for m in measurements_from_results(firsts, "accuracy", 1.0, level=0.95)}
    costs = {r.run_info.strategy: r.run_info.wall_time_s for r in firsts}
    rec = recommend_from_results(firsts)
    worse = {v["strategy"] for v in rec["ranking"] if (v.get("versus_best") or {}).get("reason") == "worse"}
    kept = kept_after_first_seed(ms, costs, rec["strategy"], set(rec.get("contenders") or [rec["strategy"]]), worse,
                                 rule, prior_sd)
    return [s for s in alive if s in kept]




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args()
    plans = bench_verdict.planned_records(bench_verdict.RESULTS, [HERE / f for f in bench_verdict.PLANNED_SITTINGS])
    tasks3 = [p["task"] for p in plans if p.get("seeds", 1) > 1 or json.loads((bench_verdict.RESULTS / f"{p['task']}.json").read_text())["seeds"] > 1]
    rows = []
    for plan in sorted(plans, key=lambda p: p["task"]):
        task = plan["task"]
        every = [r for s in bench_verdict.STRATEGIES for r in _runs(task, s)]
        ex = recommend_from_results(every)
        ex_pick, ex_cont = ex["strategy"], set(ex.get("contenders") or []) | {ex["strategy"]}
        at_rung = [r for r in plan["rounds"] if r["data_fraction"] == 1.0 and not r.get("final") and len(r["strategies"]) > 1]
        finals = [r for r in plan["rounds"] if r.get("final")]
        recorded_final = finals[-1]["strategies"] if finals else []
        row = {"task": task, "recorded_pick": plan["planned_pick"], "exhaustive_pick": ex_pick,
               "exhaustive_contenders": sorted(ex_cont), "recorded_ratio": plan["time_ratio"],
               "alive_at_rung": at_rung[0]["strategies"] if at_rung else None, "recorded_finalists": recorded_final,
               "rules": {}}
        data = task.split("-", 1)[1].rsplit("-", 1)[0]
        for rule in RULES:
            if not at_rung:
                row["rules"][rule] = {"kept": recorded_final, "pick": plan["planned_pick"],
                                      "agrees": plan["planned_pick"] in ex_cont, "ratio": plan["time_ratio"]}
                continue
            prior = pooled_seed_sd(tasks3, data)
            kept = rung(task, at_rung[0]["strategies"], rule, prior)
            pick = _pick(every, kept)
            planned_s = (plan["planned_time_s"] - other_seeds_s(task, recorded_final, plan.get("seeds", 1))
                         + other_seeds_s(task, kept, plan.get("seeds", 1)))
            row["rules"][rule] = {"kept": kept, "pick": pick, "agrees": pick in ex_cont,
                                  "ratio": round(planned_s / plan["exhaustive_time_s"], 4), "prior_sd": round(prior, 4)}
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| task | alive at the first seed | " + " | ".join(RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for row in rows:
        cells = []
        for rule in RULES:
            r = row["rules"][rule]
            cells.append(f"{','.join(r['kept'])} → {r['pick']}{'' if r['agrees'] else ' ✗'} {r['ratio']:.2f}×")
        print(f"| {row['task']} | {','.join(row['alive_at_rung'] or ['—'])} | " + " | ".join(cells) + " |")
    print("| **agree / median ratio** | | " + " | ".join(
        f"{sum(r['rules'][rule]['agrees'] for r in rows)} of {len(rows)}, "
        f"{statistics.median(r['rules'][rule]['ratio'] for r in rows):.3f}×" for rule in RULES) + " |")
    rung_rows = [r for r in rows if r["alive_at_rung"]]
    same = [r["task"] for r in rung_rows if set(r["rules"]["today"]["kept"]) == set(r["recorded_finalists"])]
    print(f"\nrecorded planned passes: {sum(r['recorded_pick'] in r['exhaustive_contenders'] for r in rows)} of {len(rows)} "
          f"agree with today's exhaustive verdict, median time ratio {statistics.median(r['recorded_ratio'] for r in rows):.3f}×")
    print(f"today's rule replayed keeps the recorded finalists on {len(same)} of {len(rung_rows)} tasks with a first-seed "
          f"rung ({', '.join(same)}): the exhaustive records' first seeds are not the planned passes' own runs")
    print("seed-spread prior (root mean square of the 3-seed standard deviations, the task's dataset left out): "
          + ", ".join(sorted({f"{r['task']} {r['rules']['seed-widened']['prior_sd']:.4f}" for r in rung_rows})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
