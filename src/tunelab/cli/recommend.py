"""``tunelab recommend`` and ``tunelab estimate``: advice and cost before any training.

    tunelab recommend --model minilm --data rotten-tomatoes --budget-minutes 10 --memory-gb 4
    tunelab estimate --model minilm --strategy lora --data rotten-tomatoes --max-length 64
    tunelab estimate --model smollm2 --strategy full --task causal-lm --batch-size 4 --max-length 256
"""

from __future__ import annotations

import argparse
import json
import sys

from tunelab.units import MEMORY_UNIT

# screening: a planned comparison marks its own rounds so; recommend and estimate train no run to mark
_NOT_FOR_ESTIMATE = {"out", "overwrite", "resume", "save_steps", "merge", "cache_dir", "max_eval_samples", "screening"}


def add_parser(sub) -> None:
    from tunelab.cli.options import add_config_flags, add_metric_flag

    p = sub.add_parser("recommend", help="measure data, domain and cost, and recommend a strategy before training")
    add_config_flags(p, skip=_NOT_FOR_ESTIMATE | {"strategy"})
    p.add_argument("--budget-minutes", type=float, help="the estimated training time (all epochs) a strategy may take; "
                   "strategies over it don't fit (compare's --max-train-minutes is the same limit on measured time)")
    p.add_argument("--memory-gb", type=float, help="memory budget in GiB (2^30 bytes; default: this machine's RAM)")
    p.add_argument("--strategies", help="comma-separated strategies to consider (default: all that apply to the task)")
    add_metric_flag(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--remeasure", action="store_true",
                   help="time every strategy's steps again instead of reusing stored measurements")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("estimate", help="predict peak memory and time per epoch of one strategy from a few timed steps")
    add_config_flags(p, skip=_NOT_FOR_ESTIMATE,
                     defaults={"data": "none: made-up examples of --max-length tokens, --num-examples of them an epoch"})
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first (default: 3)")
    p.add_argument("--steps", type=int, default=5, help="timed steps; the median is used (default: 5)")
    p.add_argument("--num-examples", type=int, help="examples per epoch when no --data is given (default: 1000)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--remeasure", action="store_true",
                   help="measure again instead of reusing a stored measurement of the same model, options, data and machine")
    p.set_defaults(func=cmd_estimate)


def _say(message: str) -> None:
    """A step of a command that runs for minutes, on stderr (stdout keeps the result, and --json its JSON)."""
    print(f"tunelab: {message} ...", file=sys.stderr, flush=True)


def cmd_estimate(args: argparse.Namespace) -> int:
    from tunelab.advice.estimate import estimate, format_estimate, step_problems
    from tunelab.cli.options import config_from_args, warn_unused_fractions
    from tunelab.errors import ConfigError

    problems = step_problems(args.warmup_steps, args.steps, args.num_examples)  # estimate's own check, before any read
    if problems:
        raise ConfigError(problems)
    use_data = "data" in vars(args) or bool(args.config)
    config = config_from_args(args)
    if use_data:
        warn_unused_fractions(args, config)
    # minutes of silence otherwise, in a log; said once the data has loaded (a bad --data: its error line alone)
    result = estimate(config, use_data=use_data, warmup_steps=args.warmup_steps, timed_steps=args.steps,
                      num_examples=args.num_examples, reuse=not args.remeasure, progress=None if args.quiet else _say)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(format_estimate(result)))
    return 0


def print_recommendation(rec: dict) -> None:
    from rich.table import Table

    from tunelab.advice.choose import metric_label
    from tunelab.advice.estimate import seconds_text
    from tunelab.cli.listing import output_console

    console = output_console()
    cfg = rec["config"]
    console.print(f"[bold]recommended strategy: {rec['strategy']}[/bold]  ({cfg['model']} on {cfg['data']}, by "
                  f"{metric_label(rec['metric'])})")
    console.print("reasons:")
    for reason in rec["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    if rec.get("notes"):  # what reading the data did (a guessed column, labels alike but for case), as compare says it
        console.print("notes:")
        for note in rec["notes"]:
            console.print(f"  - {note}", highlight=False)
    budget = rec["budget"]
    limits = ", ".join(x for x in (f"{budget['minutes']:g} min" if budget["minutes"] else "",
                                   f"{budget['memory_gb']:g} GiB" if budget["memory_gb"] else "") if x) or "machine RAM"
    device = next((row["device"] for row in rec["estimates"] if row.get("device")), None)
    table = Table(title=f"estimated cost on this machine{f' ({device})' if device else ''} (batch {cfg['batch_size']}, "
                        f"max length {cfg['max_length']}, "
                        f"{cfg['epochs']:g} epoch(s); budget: {limits})")
    for col in ("strategy", "s / epoch", f"train s ({cfg['epochs']:g} ep)", f"peak {MEMORY_UNIT}", "trainable", "fits"):
        table.add_column(col, justify="left" if col in ("strategy", "fits") else "right")
    for row in rec["estimates"]:
        if row.get("error"):
            table.add_row(row["strategy"], "-", "-", "-", "-", "no (failed: see reasons)")
            continue
        train_s = row["train_time_s"] + row.get("cache_build_s", 0.0)
        share = row["trainable_params"] / row["total_params"] if row["total_params"] else 0
        fits = "yes" if row["fits"] else "no (" + ", ".join(
            w for w, key in (("time", "budget"), ("memory", "memory")) if key in (row["why_not"] or "")) + ")"
        mark = " *" if row["strategy"] == rec["strategy"] else ""
        table.add_row(row["strategy"] + mark, seconds_text(row["time_per_epoch_s"]), seconds_text(train_s),
                      f"{row['peak_memory_mb']:,.0f}", f"{100 * share:.3g} %", fits)
    console.print(table)
    console.print("train s: every epoch's steady steps, plus the start-up, the first step's warm-up and the frozen-layer "
                  "cache's build, once each", highlight=False)
    reused = [row["strategy"] for row in rec["estimates"] if row.get("reused")]
    if reused:  # a stored measurement, not timed now: said, as estimate's note says it
        console.print(f"step times reused from earlier measurements (same model files, options, data and machine): "
                      f"{', '.join(reused)}; --remeasure times them again", highlight=False)


def cmd_recommend(args: argparse.Namespace) -> int:
    from tunelab.advice.recommend import recommend
    from tunelab.cli.options import config_from_args, warn_unused_fractions

    config = config_from_args(args)
    warn_unused_fractions(args, config)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies is not None else None
    if strategies == []:
        from tunelab.errors import ConfigError

        raise ConfigError("--strategies is empty: name some, e.g. --strategies head,lora,full, or leave it out for all")
    rec = recommend(config.model, config.data, budget_minutes=args.budget_minutes, memory_gb=args.memory_gb,
                    config=config, strategies=strategies, reuse=not args.remeasure, metric=args.metric,
                    progress=None if args.quiet else _say)
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
    else:
        print_recommendation(rec)
    return 0
