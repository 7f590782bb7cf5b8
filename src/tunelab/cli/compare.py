"""``tunelab compare`` and ``tunelab demo``: parse, call :func:`tunelab.compare.compare`, print.

    tunelab compare --model minilm --data rotten-tomatoes --strategies head,lora,full --epochs 2
    tunelab compare --model minilm --data reviews.csv --seeds 3 --data-fractions 0.1,0.3,1.0 --tune-lr
    tunelab compare ... --budget-minutes 30   # rounds (the default): strategies that cannot catch up stop early; 30 min in all
    tunelab compare ... --exhaustive      # every strategy x seed x fraction trained to the end
    tunelab compare ... --resume          # reuse finished runs, continue the interrupted one
    tunelab compare ... --executor ray --address auto --run-cpus 4 --run-gpus 1   # runs as Ray tasks
    tunelab demo                          # minilm + rotten-tomatoes, five strategies, report in runs/demo
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

from tunelab.cli.options import add_metric_flag
from tunelab.compare.planner import HALVING
from tunelab.compare.runner import CompareResult, compare, parse_lr_overrides, strategies_budget_stopped
from tunelab.config import TrainConfig
from tunelab.errors import ConfigError

#: The demo: 2,000 training examples, 2 epochs — small enough for a CPU, large enough that full
#: fine-tuning clearly beats the head-only baseline (ASSETS.md measured 0.794 vs 0.680 at this size;
#: the demo run here: last-n 0.773 vs head 0.575 test accuracy).
DEMO = {
    "model": "minilm",
    "data": "rotten-tomatoes",
    "strategies": None,  # compare's default set for the task (tunelab.strategies.default_comparison)
    "epochs": 2.0,
    "max_train_samples": 2000,
    "max_eval_samples": 800,
    "max_length": 128,
    "batch_size": 32,
    "out": "runs/demo",
}

# Options compare sets per run (or that make no sense for a comparison): not offered as flags.
_SKIP = {"strategy", "out", "resume", "overwrite", "data_fraction", "lr", "merge", "screening"}


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.1,0.3,1.0, got '{text}'") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="folder for runs, results.csv and the report")
    p.add_argument("--max-train-minutes", type=float, help="the recommendation sets aside strategies whose training "
                   "took longer than this (train time, per run; the old meaning of compare --budget-minutes)")
    p.add_argument("--memory-gb", type=float, help="the recommendation sets aside strategies whose peak memory was higher "
                   "(GiB, 2^30 bytes)")
    p.add_argument("--max-forgetting", type=float, help="the recommendation sets aside strategies that forgot more "
                   "(in the unit the runs measured: nats/token on decoders, 1 - debiased CKA on encoders; see metrics.json)")
    p.add_argument("--json", action="store_true", help="print the runs and the recommendation as JSON, nothing else")
    add_metric_flag(p)
    p.add_argument("--tolerance", type=float, help="also count as good as the best a strategy shown to be within this "
                   "much of it: absolute for accuracy / F1 (0.01 = one point), relative for perplexity (0.02 = 2 %%); "
                   "default: none, only statistical indistinguishability")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the comparison with the best, and "
                   "1 - the level of every interval (default: 0.05, 95 %% intervals)")
    p.add_argument("--no-pre-recommendation", dest="pre_recommend", action="store_false",
                   help="skip the pre-training recommendation (tunelab recommend) shown beside the measured one")


def add_parser(sub) -> None:
    """Register ``compare`` and ``demo`` on the CLI's subparsers."""
    from tunelab.cli.options import add_config_flags

    p = sub.add_parser(
        "compare",
        help="train several strategies on the same split and budget, recommend one, write a report",
        description="Each strategy trains in its own process on the same split, for the same epochs, with its own "
        "default learning rate (or the best of a short search with --tune-lr). The runs go in rounds within a time "
        "budget (--budget-minutes, or the default below): every strategy first trains on a ninth of the data, and "
        "those that cannot catch up with the leader are stopped early, with the reason and the prediction. "
        "--exhaustive trains every strategy to the end, as does a comparison over several --data-fractions (the "
        "learning curves asked for). A strategy that fails is recorded with its message and the others go on.",
    )
    p.add_argument("--strategies", type=_names, default=None,
                   help="comma-separated (default: those `tunelab strategies` marks as compared, of those that apply to "
                        "the task)")
    p.add_argument("--seeds", type=int, default=1, help="repeat each run with K seeds on the same split; report mean ± std (in rounds: at the full "
                        "data, one seed of every strategy left first, then the other seeds for those that remain)")
    p.add_argument("--data-fractions", type=_floats, default=[1.0],
                   help="repeat the comparison on nested subsets of the training split (after --max-train-samples caps "
                        "it), e.g. 0.1,0.3,1.0")
    p.add_argument("--tune-lr", action="store_true",
                   help="per strategy, try its default lr ×0.3, ×1, ×3 for --tune-lr-epochs on the validation split and keep the best")
    p.add_argument("--tune-lr-epochs", type=float, help="epochs of each learning-rate search run (default: 1)")
    p.add_argument("--lr-overrides", type=str, default="", metavar="S=LR,...",
                   help="fix a strategy's learning rate, e.g. full=1e-5,lora=1e-3 (others keep their default)")
    p.add_argument("--resume", action="store_true", help="reuse finished runs in --out and continue the interrupted one")
    p.add_argument("--overwrite", action="store_true", help="train every run again, replacing what --out holds")
    p.add_argument("--run-timeout", type=float, help="stop (and record as failed) a run that takes longer than this many seconds")
    p.add_argument("--budget-minutes", type=float,
                   help="the comparison's total wall time. The runs go in rounds (data ×3 per round); after each, "
                   "strategies whose best-case predicted validation metric at the full data cannot reach the leader's "
                   "worst case are stopped early; no run starts that is predicted to end after the budget, and one "
                   "still training then stops after its current step. Default: max(5 min, 2 × seeds × Σ over "
                   "strategies of the estimated time on all the data, ⌈n_train / batch⌉ × epochs × step time + cache "
                   "build, from the cost estimates when the advice measured them, else predicted from each strategy's round-1 "
                   "run and set when round 1 ends)")
    p.add_argument("--halving", type=float, default=HALVING, metavar="ETA",
                   help="planned rounds: after each, the best ⌈n / ETA⌉ of the n strategies left (by predicted validation "
                   "metric at the full data) go on, and one predicted below a cheaper one that goes on is stopped too "
                   f"(successive halving; default {HALVING:g}); 1 keeps every strategy that can still catch up")
    p.add_argument("--plan", action="store_true",
                   help="run in rounds within the default budget (see --budget-minutes), also over several "
                   "--data-fractions (the default for one fraction)")
    p.add_argument("--exhaustive", action="store_true",
                   help="train every strategy × seed × fraction to the end, no rounds (the default with several "
                   "--data-fractions, and on --resume of a comparison that ran so)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where the runs train: local (one process after another, each forked from a warm server, the "
                   "default) or ray "
                   "(each run a Ray task, as many at once as the cluster has room for; pip install 'tunelab[ray]')")
    p.add_argument("--address", help="--executor ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); "
                   "default: start a local one")
    p.add_argument("--run-cpus", type=float, default=None, help="--executor ray: CPUs each run holds (default: 1)")
    p.add_argument("--run-gpus", type=float, default=None, help="--executor ray: GPUs each run holds (default: 0)")
    _add_common(p)
    add_config_flags(p, skip=_SKIP)
    p.set_defaults(func=cmd_compare, every_process=True)  # refused under a launcher by each process, said once (runner)

    d = sub.add_parser(
        "demo",
        help="compare the default strategies (head to full) on minilm + rotten-tomatoes (2,000 examples, 2 epochs)",
        description=f"tunelab compare on the embedded defaults: {DEMO['model']} + {DEMO['data']}, the default strategies "
        f"(`tunelab strategies`), {DEMO['max_train_samples']} training examples, {DEMO['epochs']:g} epochs. "
        "A rerun reuses the finished runs in --out (pass --fresh to train everything again).",
    )
    d.add_argument("--fresh", action="store_true", help="train every run again instead of reusing finished ones")
    d.add_argument("--exhaustive", action="store_true",
                   help="train every strategy to the end (default: in rounds, as tunelab compare: the strategies "
                   "that cannot catch up, or fall outside successive halving's cut, stop early)")
    _add_common(d)
    d.set_defaults(func=cmd_demo, out=DEMO["out"], every_process=True)  # a comparison: refused there too


def cmd_compare(args: argparse.Namespace) -> int:
    from tunelab.cli.options import config_from_args, warn_unused_fractions
    from tunelab.run.isolate import answer_interrupts

    answer_interrupts()  # started with SIGINT ignored (a script's `tunelab compare ... &`): its runs answer Ctrl-C, so
    # the comparison does too, and stops with them instead of going on without the run they were training
    if args.exhaustive and args.plan:  # two flags for compare(exhaustive=...): the rest is checked by compare's own checks
        raise ConfigError("--plan runs a planned comparison and --exhaustive trains everything to the end: pick one")
    from tunelab.compare.executors import make_executor
    from tunelab.compare.runner import check_options, compare_options

    base = config_from_args(args)
    check_options(base, compare_options(**_options(args)))  # before the executor starts (Ray) or the data is read for a warning
    warn_unused_fractions(args, base)
    executor = make_executor(args.executor, address=args.address, run_cpus=args.run_cpus, run_gpus=args.run_gpus)
    with _resume_hint(args, base):
        result = _compare(args, base, executor)
    print_result(result, as_json=args.json)
    return _exit_code(result)


@contextlib.contextmanager
def _resume_hint(args: argparse.Namespace, base):
    """Ctrl-C during a comparison: say where its finished runs are and the command that continues it."""
    from tunelab.compare.runner import default_compare_out
    from tunelab.run.resilience import RunInterrupted

    try:
        yield
    except KeyboardInterrupt as exc:
        out = args.out or default_compare_out(base, args.resume)
        typed = [a for a in getattr(args, "command_line", None) or ["compare"] if a not in ("--overwrite", "--resume")]
        # (a run's own hint names `tunelab train`: the comparison's resume continues that run too)
        raise RunInterrupted(f"the comparison's finished runs are kept in {out}; its report is written when it ends. "
                             f"Resume with: tunelab {shlex.join([*typed, '--resume'])}", None) from exc


def _options(args: argparse.Namespace) -> dict:
    """compare's options (:class:`~tunelab.compare.runner.CompareOptions`) from the command's flags."""
    return dict(
        seeds=args.seeds,
        data_fractions=args.data_fractions,
        tune_lr=args.tune_lr,
        tune_lr_epochs=args.tune_lr_epochs,
        lr_overrides=parse_lr_overrides(args.lr_overrides),
        resume=args.resume,
        overwrite=args.overwrite,
        budget_minutes=args.budget_minutes,
        halving=args.halving,
        exhaustive=False if args.plan else True if args.exhaustive else None,
        **{k: v for k, v in _verdict_options(args).items() if k != "log"},
        run_timeout_s=args.run_timeout,
    )


def _compare(args: argparse.Namespace, base, executor):
    return compare(base, args.strategies, out=args.out, log=_verdict_options(args)["log"], executor=executor,
                   **_options(args))


def _exit_code(result: CompareResult) -> int:
    """0 when at least one run succeeded (the others are recorded as failed, with their messages); 1 when
    none did, or when an interrupt stopped a run before its end (the verdict then stands on part of the comparison),
    so a script or CI job that runs the comparison sees it (everything is still written)."""
    if result.interrupted:  # the verdict stands on part of the comparison: a script must not act on it as final
        print(f"tunelab: {len(result.interrupted)} run(s) were interrupted before their end; tunelab compare --resume "
              "finishes them", file=sys.stderr)
        return 1
    from tunelab.compare.runner import no_final_success

    if any(r.succeeded for r in result.results) and no_final_success(result.planning):
        print("tunelab: no run of the final round succeeded, so the recommendation rests on a screening run; fix the "
              f"failure (its message is in {result.report.get('csv', result.out)}) and run tunelab compare --resume",
              file=sys.stderr)
        return 1
    budget = bool(strategies_budget_stopped(result.planning))
    if any(r.succeeded for r in result.results) and not (budget and not result.recommendation.get("strategy")):
        return 0
    if any(r.succeeded for r in result.results):  # screening runs finished, then the budget stopped every strategy
        print("tunelab: no strategy got past its screening runs within the time budget, so there is nothing to "
              "recommend; tunelab compare --resume with a larger --budget-minutes goes on from there", file=sys.stderr)
        return 1
    if (result.results or budget) and not result.failed:  # budget: no run started at all (none has a record)
        spent = (result.planning or {}).get("budget_s")
        within = f"the {spent / 60:.2g}-minute ({spent:.0f} s) time budget" if spent else "the time budget"
        print(f"tunelab: no run finished within {within}, so there is nothing to recommend; tunelab compare "
              "--resume with a larger --budget-minutes goes on from there", file=sys.stderr)
        return 1
    errors = {r.run_info.error for r in result.results if not r.succeeded}
    same = f" with the same error: {next(iter(errors))}" if len(errors) == 1 and None not in errors else ""
    print(f"tunelab: every run failed{same}, so there is nothing to recommend; "
          f"{'the' if same else 'their'} message{'' if same else 's'} {'is' if same else 'are'} also in "
          f"{result.report.get('csv', result.out)}", file=sys.stderr)
    return 1


def _verdict_options(args: argparse.Namespace) -> dict:
    """The options ``compare`` and ``demo`` share: how the recommendation is made, and what is printed."""
    return dict(max_train_minutes=args.max_train_minutes, memory_gb=args.memory_gb, max_forgetting=args.max_forgetting,
                metric=args.metric, tolerance=args.tolerance, alpha=args.alpha, pre_recommend=args.pre_recommend,
                log=None if args.quiet or args.json else print)


def cmd_demo(args: argparse.Namespace) -> int:
    from tunelab.run.isolate import answer_interrupts

    answer_interrupts()  # as cmd_compare
    base = TrainConfig(
        model=DEMO["model"],
        data=DEMO["data"],
        epochs=DEMO["epochs"],
        max_train_samples=DEMO["max_train_samples"],
        max_eval_samples=DEMO["max_eval_samples"],
        max_length=DEMO["max_length"],
        batch_size=DEMO["batch_size"],
    )
    if not args.quiet:
        from tunelab.strategies import default_comparison

        print(f"tunelab demo: {', '.join(default_comparison('classification'))} on {DEMO['model']} + {DEMO['data']} "
              f"({DEMO['max_train_samples']} training examples, {DEMO['epochs']:g} epochs) -> {args.out}")
    result = compare(
        base,
        DEMO["strategies"],
        out=args.out,
        # an earlier demo in --out is reused (its finished runs); the first demo starts one without a word about it
        resume=not args.fresh and Path(args.out).is_dir() and any(Path(args.out).iterdir()),
        overwrite=args.fresh,
        exhaustive=args.exhaustive,  # default: the main job as it is meant to run, in rounds within the default budget
        **_verdict_options(args),
        title=f"tunelab demo: {DEMO['model']} on {DEMO['data']}",
    )
    print_result(result, as_json=args.json)
    return _exit_code(result)


def print_result(result: CompareResult, *, as_json: bool = False) -> None:
    """The results table, the crossover across data fractions, the recommendation and where the report is
    (``as_json``: the runs' records and the recommendation as one JSON object)."""
    if as_json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
        return
    from rich.table import Table

    from tunelab.advice.choose import format_metric
    from tunelab.cli.listing import output_console
    from tunelab.report import console_table
    from tunelab.report.tables import learning_curve_table, run_notes

    console = output_console()
    rec = result.recommendation
    console.print(console_table(result.results, highlight=rec.get("strategy"), recommendation=rec))
    curves = (rec.get("learning_curves") or {}).get("curves") or {}
    if any(c["fitted"] for c in curves.values()):
        console.print(learning_curve_table(rec))
    elif result.crossover:
        # full fine-tuning's columns only where it ran: without it the table is the best strategy per size
        full = any(row["full_mean"] is not None for row in result.crossover)
        table = Table(title="validation, by training-set size" +
                      (": full fine-tuning vs the best frozen/PEFT strategy" if full else ""))
        for col in ("data fraction", "train examples", "best", *(("full",) if full else ()), "best frozen/PEFT",
                    *(("full wins",) if full else ())):
            table.add_column(col, justify="right")
        for row in result.crossover:
            metric = row["metric"]
            cells = [
                f"{row['data_fraction']:g}",
                "–" if row["n_train"] is None else f"{row['n_train']:,}",
                f"{row['best_strategy']} {format_metric(row['best_mean'], metric)}",
                format_metric(row["full_mean"], metric),
                "–" if row["best_frozen_or_peft"] is None
                else f"{row['best_frozen_or_peft']} {format_metric(row['best_frozen_or_peft_mean'], metric)}",
                "–" if row["full_beats"] is None else ("yes" if row["full_beats"] else "no"),
            ]
            table.add_row(*(cells if full else cells[:3] + cells[4:5]))
        console.print(table)
    if rec.get("strategy"):
        console.print(f"[bold]recommended: {rec['strategy']}[/bold]")
    else:
        console.print("[bold red]no strategy to recommend[/bold red]")
    for reason in rec.get("reasons", []):
        console.print(f"  - {reason}", highlight=False)
    notes = run_notes(result.results)
    if notes:
        console.print("notes:")
        for note in notes:
            console.print(f"  - {note}", highlight=False)
    if result.failed:
        console.print(f"{len(result.failed)} run(s) failed; their messages are in the table and in each run's metrics.json")
    if result.interrupted:
        names = ", ".join(sorted({r.run_info.strategy for r in result.interrupted}))
        console.print(f"[bold]{len(result.interrupted)} run(s) of {names} were interrupted before their end[/bold] (a "
                      "checkpoint saved): the verdict above leaves them out; tunelab compare --resume finishes them and "
                      "decides again")
    # counted by the plan's stops: a run the budget left unstarted has no record among the results
    budget = strategies_budget_stopped(result.planning)
    if budget or result.budget_stopped:
        names = budget or sorted({r.run_info.strategy for r in result.budget_stopped})
        console.print(f"{len(names)} strateg{'y' if len(names) == 1 else 'ies'} ({', '.join(names)}) stopped by the "
                      "time budget, a run not started or interrupted; tunelab compare --resume with a larger "
                      "--budget-minutes goes on with them")
    html = result.report.get("html")
    md = result.report.get("md")
    console.print(f"report: {html}" + (f" (also {md}, {Path(result.out) / 'results.csv'})" if md else ""), highlight=False, soft_wrap=True)
