"""``write_report``: the comparison as ``report.html`` (one self-contained page) and ``report.md``
(with its plots in ``plots/*.png``), plus ``results.csv`` with every run."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.advice.choose import (
    crossover_from_fractions,
    crossover_statement,
    describe_gap,
    format_difference,
    format_mb,
    format_metric,
    format_seconds,
    format_share,
    format_signed,
    largest_fraction,
    learning_curves_from_results,
    metric_label,
    p_text,
    recommend_from_results,
    results_task,
    run_fraction,
    run_strategy,
    run_succeeded,
    summarize_strategies,
)
from tunelab.advice.learning import too_few_sizes
from tunelab.advice.stats import Interval
from tunelab.advice.verdict import run_outputs
from tunelab.errors import and_list
from tunelab.io import atomic_write_bytes, atomic_write_text
from tunelab.metrics import higher_is_better
from tunelab.report.document import (
    Block,
    BulletList,
    Callout,
    Heading,
    Paragraph,
    Preformatted,
    Table,
    render_html,
    render_markdown,
)
from tunelab.report.tables import (
    axes_table,
    format_signals,
    format_with_interval,
    learning_curve_rows,
    results_table,
    results_table_cells,
    run_notes,
    stop_note,
    write_results_csv,
)
from tunelab.run.forgetting import meaning as forgetting_meaning
from tunelab.run.forgetting import unit_of as forgetting_unit_of
from tunelab.run.outputs import ExampleOutputs
from tunelab.run.record import as_record


def write_report(
    out_dir: str | Path,
    results: list[dict],
    *,
    recommendation: dict | None = None,
    pre_recommendation: dict | None = None,
    title: str = "tunelab comparison",
    task: str | None = None,
) -> dict[str, Path]:
    """Write the comparison report into ``out_dir`` and return the paths written.

    ``report.html`` is one file that opens offline (inline CSS, plots as base64 PNG, no script);
    ``report.md`` says the same and references ``plots/*.png`` beside it; ``results.csv`` holds every
    run. ``recommendation`` is :func:`tunelab.advice.choose.recommend_from_results`'s answer (computed with
    no limits when not given); ``pre_recommendation`` (``{"strategy", "reasons", "signals",
    "estimates"}``) is the advice given before training, compared here with the measured choice. ``task``: the
    comparison's, when it knows it (every run may have failed before recording one); else read from the runs.

    ``recommendation.json`` holds the recommendation itself (the choice, its reasons, every strategy's ranking with
    its intervals and paired comparison), for scripts that act on the verdict.

    Returns ``{"html", "md", "csv", "json", "plots"}`` (``plots`` is the folder of PNGs).

    >>> paths = write_report("runs/compare", runs)   # doctest: +SKIP
    >>> paths["html"]                                # doctest: +SKIP
    PosixPath('runs/compare/report.html')
    """
    out_dir = Path(out_dir)
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    if recommendation is None:
        recommendation = recommend_from_results(results)

    from tunelab.report.plots import all_plots  # matplotlib is only imported when a report is drawn

    metric = recommendation.get("metric")
    curves = learning_curves_from_results(results, metric, level=1.0 - float(recommendation.get("alpha") or 0.05))
    plots = all_plots(results, metric=metric, curves=curves, recommendation=recommendation)
    for plot in plots:
        atomic_write_bytes(plot_dir / f"{plot.name}.png", plot.png)

    blocks = build_blocks(results, plots, recommendation=recommendation, pre_recommendation=pre_recommendation, title=title,
                          task=task)
    footer = f"Written by tunelab {_version()} on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    paths = {
        "html": out_dir / "report.html",
        "md": out_dir / "report.md",
        "csv": out_dir / "results.csv",
        "json": out_dir / "recommendation.json",
        "plots": plot_dir,
    }
    atomic_write_text(paths["html"], render_html(blocks, title=title, footer=footer))
    atomic_write_text(paths["md"], render_markdown(blocks, plot_dir="plots", footer=footer))
    write_results_csv(paths["csv"], results)
    atomic_write_text(paths["json"], json.dumps(_strict_json(recommendation), indent=2, default=str) + "\n")
    return paths


def _strict_json(value: Any) -> Any:
    """``value`` (nested dicts and lists) with NaN and infinities as ``null``, which strict JSON readers accept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
    return value


def _version() -> str:
    from tunelab import __version__

    return __version__


def build_blocks(
    results: list[dict],
    plots: list,
    *,
    recommendation: dict,
    pre_recommendation: dict | None,
    title: str,
    task: str | None = None,
) -> list[Block]:
    """The report's content, in order, as renderer-neutral blocks: the recommendation first (it is what
    the reader came for), the results, the ranking, per-class scores, the trade-off plots, the comparison
    axes, the data-size view, the advice before training, the failures, the runs' notes (data and training) and the environment."""
    task = task or results_task(results)
    summaries = summarize_strategies(results, metric=recommendation.get("metric"))
    metric = recommendation.get("metric") or (summaries[0].metric if summaries else "accuracy")
    chosen = recommendation.get("strategy")
    reasons = list(recommendation.get("reasons") or [])
    blocks: list[Block] = [
        Heading(title, 1),
        Paragraph(_subtitle(results, summaries, task), css="note"),
        Callout(f"Recommended strategy: {chosen}", reasons) if chosen else Callout("No strategy recommended", reasons, good=False),
        *_results_blocks(results, recommendation, summaries, chosen),
        *_ranking_blocks(recommendation, chosen, metric),
    ]
    if chosen and task == "classification":
        blocks.extend(_per_class_blocks(next((s for s in summaries if s.strategy == chosen), None)))
    blocks.extend(_plot_blocks(plots))
    blocks.extend(_axes_blocks(results, pre_recommendation, metric, said=reasons, recommendation=recommendation))
    blocks.extend(_data_size_blocks(results, recommendation, metric))
    if pre_recommendation:
        blocks.extend(_pre_recommendation_blocks(pre_recommendation, recommendation, summaries, metric))
    blocks.extend(_failure_blocks(results))
    notes = run_notes(results)
    if notes:
        blocks.extend([Heading("Notes"), BulletList(notes)])
    blocks.extend(_environment_blocks(results))
    return _explain_terms(blocks)


#: Terms the report uses that a reader may not know, each with one plain line, said once: where it first appears.
TERMS = {
    "LogME": "how well a simple linear model on the frozen model's features can explain the labels, as a log-likelihood "
             "per example (You et al., 2021); higher means the features suit the task better; only comparable within one "
             "task.",
    "H-score": "how far apart the classes lie in the frozen model's features, relative to the features' overall "
               "spread (Bao et al., 2019); higher means the classes separate better before any training.",
    "η": "successive halving's factor (--halving): after a round, only the best ⌈n / η⌉ of the n strategies left go "
         "on; η = 1 keeps every one that can still catch up.",
}


def _block_text(block: Block) -> str:
    """Every string a block shows (its text, items, headers, cells, caption), joined."""
    parts: list[str] = []
    for value in vars(block).values():
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for item in value:
                parts.extend(item if isinstance(item, list) else [item])
    return " ".join(p for p in parts if isinstance(p, str))


def _explain_terms(blocks: list[Block]) -> list[Block]:
    """``blocks`` with a one-line note after the first block that uses each of :data:`TERMS` (nothing where none is
    used): the explanation is given once, where the reader first meets the term."""
    first: dict[int, list[str]] = {}
    texts = [_block_text(b) for b in blocks]
    for term in TERMS:
        at = next((i for i, text in enumerate(texts) if term in text), None)
        if at is not None:
            first.setdefault(at, []).append(term)
    out: list[Block] = []
    for i, block in enumerate(blocks):
        out.append(block)
        out.extend(Paragraph(TERMS[term], lead=f"{term}:", css="note") for term in first.get(i, []))
    return out


def _causal(results: list[dict]) -> bool:
    """Whether the runs trained a causal LM (their examples are texts, packed into blocks)."""
    return any((r.get("meta_info") or {}).get("task") == "causal-lm" for r in results)


def _results_blocks(results: list[dict], recommendation: dict, summaries: list, chosen: str | None) -> list[Block]:
    """The results table: one row per strategy, a failed one's error in place of its numbers."""
    rows = results_table(results, recommendation=recommendation)
    if not rows:
        return [Heading("Results"), Paragraph("No runs were recorded.")]
    headers, cells = results_table_cells(rows)
    fraction = rows[0]["data_fraction"]
    seeds = max((r["n"] for r in rows), default=0)
    caption = (
        f"One row per strategy at data fraction {fraction:g}"
        + (f" ({rows[0]['n_train']:,} training {'texts' if _causal(results) else 'examples'})"
           if rows[0]["n_train"] is not None else "")
        + f". Strategies are chosen on the validation split; the test split is only reported. {_interval_note(rows, seeds, _causal(results))}"
        + " Costs are means over seeds. Train time counts training steps only; eval time all evaluation."
        + _memory_note(summaries)
        + _forgetting_note(summaries)
    )
    classes = ["chosen" if r["strategy"] == chosen else ("failed" if r["val_mean"] is None else "") for r in rows]
    spans = [r["val_mean"] is None for r in rows]
    cells = [
        ([c[0], c[1], stop_note(r["stop"])] if r.get("stop") else [c[0], c[1], f"error: {r['error'] or 'no error recorded'}"])
        if failed else c
        for c, r, failed in zip(cells, rows, spans)
    ]
    return [Heading("Results"), Table(headers, cells, caption=caption, row_classes=classes, spans=spans),
            *_stopped_early_blocks(recommendation)]


def _elapsed_note(planning: dict) -> str:
    """How long the comparison took; a resumed one's time is its own, its reused runs' not counted."""
    if planning.get("elapsed_s") is None:
        return ""
    took = f"{planning['elapsed_s'] / 60:.1f} minutes up to the last run"
    reused = planning.get("reused_runs") or 0
    if not reused:
        return f"; it took {took}"
    of = f" of its {planning['runs']}" if planning.get("runs") else ""
    return (f"; resumed, it took {took}, reusing {reused}{of} run{'s' if reused != 1 else ''} finished earlier "
            "(their time not counted)")


def _stopped_early_blocks(recommendation: dict) -> list[Block]:
    """A planned comparison's rounds, and each strategy it stopped early: when, and on what prediction."""
    planning = recommendation.get("planning") or {}
    if not planning:
        return []
    metric = planning.get("metric") or recommendation.get("metric") or "accuracy"
    rounds = planning.get("rounds") or []
    budget = planning.get("budget_s")
    # a round at the fraction of the one before it trains the seeds left (the rounds' seeds: how many so far)
    fractions = ", ".join(f"{r['data_fraction']:g}" + (" (the other seeds)" if i and r["data_fraction"] ==
                                                       rounds[i - 1]["data_fraction"] else "")
                          for i, r in enumerate(rounds))
    plural = len({r["data_fraction"] for r in rounds}) != 1
    intro = (
        f"The comparison ran in {len(rounds)} round{'s' if len(rounds) != 1 else ''}, at data "
        f"fraction{'s' if plural else ''} {fractions}"
        + (f", within a budget of {budget / 60:.1f} minutes ({planning.get('budget_source') or 'given'})" if budget else
           f", without a time budget ({planning.get('budget_source') or 'none given'})")
        + _elapsed_note(planning)
        + ". After each round, every strategy's validation metric at the full data was predicted (a learning curve "
        "fitted on its rounds, or the measured value with its interval and the last round's gain carried on); a "
        "strategy whose best case could not reach the leader's worst case was stopped early (behind)"
        + (f", and of the rest only the best ⌈n / {planning['halving']:g}⌉ went on (successive halving: halved), less "
           "one predicted below a cheaper one that went on (dominated: the verdict recommends the cheaper of two "
           "strategies it cannot separate)" if planning.get("halving") else "")
        + ". The results above are "
        "the largest data fraction that was run; a strategy stopped before it is listed without numbers."
    )
    quiet = planning.get("not_halved_after") or []
    if quiet:
        which = f"round{'s' if len(quiet) > 1 else ''} {and_list(quiet)}"
        intro += (f" After {which} nothing was halved: no strategy was distinguishable "
                  "from always predicting the most frequent class, so their order said nothing.")
    for index, fresh in (planning.get("unranked") or {}).items():
        intro += (f" After round {index}, {', '.join(fresh)} went on unranked: not yet distinguishable from always "
                  "predicting the most frequent class, so nothing bounded where they would end.")
    stops = [s for s in planning.get("stopped") or [] if s["status"] == "stopped_early"]
    blocks: list[Block] = [Heading("Stopped early"), Paragraph(intro)]
    if not stops:
        blocks.append(Paragraph("No strategy was stopped early: every one reached the final round."))
        return blocks
    label = metric_label(metric)
    rows = []
    for stop in stops:
        p, lead = stop.get("prediction") or {}, stop.get("leader") or {}
        rows.append([
            stop["strategy"], str(stop["round"]), f"{stop['data_fraction']:g}", stop["reason"],
            format_metric(p.get("measured"), metric) if p else "–",
            f"{format_metric(p.get('estimate'), metric)} ({format_metric(p.get('optimistic'), metric)} / "
            f"{format_metric(p.get('pessimistic'), metric)})" if p else "–",
            f"{lead['strategy']} {format_metric(lead.get('pessimistic' if stop['reason'] == 'behind' else 'estimate'), metric)}"
            if lead else "–",
            stop["message"],
        ])
    headers = ["Strategy", "Last round", "Data fraction", "Reason", f"Measured validation {label}",
               "Predicted at full data: estimate (best / worst case)", "Against (worst case if behind, else estimate)", "Why"]
    blocks.append(Table(headers, rows, caption="Strategies stopped before the final round, with the prediction that stopped them."))
    return blocks


def _plot_blocks(plots: list) -> list[Block]:
    if not plots:
        return [Heading("Trade-offs"), Paragraph("Nothing to plot: no run succeeded.")]
    note = ("Each point is a strategy (its test metric and, as a bar, its interval, as the results table gives them); "
            "a strategy on the dashed Pareto frontier is not beaten on both the metric and the cost by any other. "
            "Failed runs are not plotted.")
    return [Heading("Trade-offs"), Paragraph(note, css="note"), *plots]


def _axes_blocks(results: list[dict], pre_recommendation: dict | None, metric: str | None = None,
                 said: list[str] = (), recommendation: dict | None = None) -> list[Block]:
    """The axes people compare the two approaches on, filled with this comparison's numbers (its ``metric``). An axis
    with one text for every strategy that ``said`` (the recommendation's reasons, above) already states is left out:
    the data regime is said once, in the recommendation."""
    strategies, axes = axes_table(results, pre_recommendation=pre_recommendation, metric=metric,
                                  recommendation=recommendation)
    if not strategies:
        return []
    stated = [axis for axis, cells in axes  # "Data regime: 300 training examples, ...", the axis and its text
              if len(set(cells)) == 1 and cells[0] and any(f"{axis}: {cells[0]}" in reason for reason in said)]
    axes = [(axis, cells) for axis, cells in axes if axis not in stated]
    names = {axis for axis, _ in axes}
    note = ("The axes people compare the two approaches on (working principle, architecture, training "
            "process, computing resources, data, domain), filled with what this comparison measured.")
    caption = ("Share, memory, time and the test metric are measured (the test metric with its interval, as in the "
               "results table)"
               + ("; data regime from the dataset's metadata" if "Data regime" in names else "")
               + ("; closeness of domain from the pre-training analysis when it ran" if "Closeness of domain" in names
                  else "") + "."
               + (f" {', '.join(stated)}, the same for every strategy: in the recommendation above." if stated else ""))
    # an axis on which every strategy has the same text (the data's regime, the domain's closeness: facts of the data,
    # not of a strategy) is said once, under the table, not in every strategy's column
    shared = [(axis, cells[0]) for axis, cells in axes if len(strategies) > 1 and len(set(cells)) == 1]
    return [
        Heading("Transfer learning vs fine-tuning, on this run's numbers"),
        Paragraph(note, css="note"),
        Table(["", *strategies], [[axis, *cells] for axis, cells in axes if (axis, cells[0]) not in shared],
              row_headers=True, caption=caption),
        *[Paragraph(text, lead=f"{axis}, the same for every strategy:") for axis, text in shared],
    ]


def _failure_blocks(results: list[dict]) -> list[Block]:
    """Every failed run's error, in full, grouped by strategy and message."""
    failed: dict[tuple[str, str], list[dict]] = {}
    for run in results:
        if not run_succeeded(run):
            error = str(as_record(run).run_info.error or "failed (no error recorded)")
            failed.setdefault((run_strategy(run), error), []).append(run)
    if not failed:
        return []
    blocks: list[Block] = [Heading("Failed runs")]
    for (strategy, error), runs in failed.items():
        which = "; ".join(f"seed {_seed(r)} at data fraction {run_fraction(r):g}" for r in runs)
        count = f"{len(runs)} runs" if len(runs) > 1 else "1 run"
        blocks.append(Paragraph(f"{count} ({which}) failed with:", lead=f"{strategy}:"))
        blocks.append(Preformatted(error))
    return blocks


def _interval_note(rows: list[dict], seeds: int, causal: bool = False) -> str:
    """Where the intervals in the results table come from (``causal``: a causal LM's, resampled by text)."""
    level = f"{100 * rows[0]['level']:g} %" if rows else "95 %"
    methods = {r[split]["method"] for r in rows for split in ("validation", "test") if r.get(split)}
    if not methods:
        return ("No intervals: a single seed and no per-example outputs saved" if seeds <= 1
                else "Values are mean ± sample std over seeds") + "."
    how = []
    if any("bootstrap" in m for m in methods):
        kind = " (bias-corrected and accelerated, BCa)" if any(m.startswith("bca") for m in methods) else ""
        how.append(f"a bootstrap{kind} over the evaluation "
                   + ("texts (each its tokens' losses summed)" if causal else "examples")
                   + (", widened by Student's t on the spread over seeds" if seeds > 1 else ""))
    if any(m.startswith("t interval") for m in methods):
        how.append("the spread over seeds (t interval) where no per-example outputs were saved")
    return f"Brackets: {level} intervals from {' and '.join(how)}."


def _ranking_blocks(recommendation: dict, chosen: str | None, metric: str) -> list[Block]:
    """The ranking on validation, each strategy against the best (difference, interval, reason)."""
    ranking = recommendation.get("ranking") or []
    if not ranking:
        return []
    label = metric_label(metric)
    level = f"{100 * (1 - float(recommendation.get('alpha') or 0.05)):g} %"
    rows = []
    for i, r in enumerate(ranking, start=1):
        rows.append([
            str(i), r["strategy"],
            format_with_interval(r.get("validation"), r["mean"], r["std"], r["n"], metric),
            format_with_interval(r.get("test"), r.get("test_mean"), r.get("test_std"), r["n"], metric),
            _versus_text(r.get("versus_best"), metric), str(r["n"]), "yes" if r["fits"] else "no",
            r["why_not"] or ("chosen" if r["strategy"] == chosen else "–"),
        ])  # fmt: skip
    test = recommendation.get("comparison_test") or "none"
    caption = (f"Ranked by validation {label} (the split strategies are chosen on); test is reported, not used. "
               f"Difference vs best: validation, value − best ({'points' if higher_is_better(metric) else 'relative'}), "
               f"with its {level} paired-bootstrap interval (unadjusted); comparison, which decides: {test}.")
    return [
        Heading("Ranking", 3),
        Table(["#", "Strategy", f"Validation {label} [{level} CI]", f"Test {label} [{level} CI]",
               "Difference vs best (validation)", "Seeds", "Fits the limits", "Why not chosen"], rows, caption=caption,
              row_classes=["chosen" if r["strategy"] == chosen else ("failed" if r["mean"] is None else "") for r in ranking]),
    ]


_REASON_WORDS = {"best": "best", "within_tolerance": "within tolerance", "not_distinguishable": "not distinguishable",
                 "worse": "worse", "untested": "no interval", "at_chance": "not shown to learn"}


def _versus_text(versus: dict | None, metric: str) -> str:
    if not versus:
        return "–"
    if versus["reason"] == "best":
        return "best"
    reason = _REASON_WORDS.get(versus["reason"], versus["reason"])
    if versus.get("gap_low") is None:
        sign = -1 if higher_is_better(metric) else 1
        unit = " points" if higher_is_better(metric) else " %"
        return f"{format_signed(sign * versus['gap'])}{unit} ({reason})"
    gap = Interval(versus["gap"], versus["gap_low"], versus["gap_high"], 0.0, "", 0)
    p = versus.get("p_value")
    note = "; the interval is unadjusted" if versus.get("interval_disagrees") else ""
    return f"{format_difference(gap, metric)} ({reason}{'' if p is None else ', ' + p_text(p)}{note})"


def _per_class_blocks(summary) -> list[Block]:
    """Per-class precision, recall, F1 and the confusion matrix of the recommended strategy on test,
    from its saved outputs (pooled over seeds); nothing when none were saved."""
    if summary is None:
        return []
    outputs = [run_outputs(run, "test") for run in summary.runs]
    if not outputs or any(o is None or o.labels is None for o in outputs):
        return []
    pooled = ExampleOutputs(labels=np.concatenate([o.labels for o in outputs]),
                            predictions=np.concatenate([o.predictions for o in outputs]), label_names=outputs[0].label_names)
    table = pooled.per_class()
    seeds = f", pooled over {len(outputs)} seeds" if len(outputs) > 1 else ""
    predicted = [sum(column) for column in zip(*table["confusion"])]
    # a class with no example in the split has no recall or F1 and is not in the macro F1 (tunelab.metrics.macro_classes);
    # where it was predicted, its precision (0) says those predictions were all wrong
    absent = [c for c, n in zip(table["classes"], table["support"]) if n == 0]
    scores = [[c] + ([f"{p:.3f}" if k else "–", "–", "–"] if c in absent else [f"{p:.3f}", f"{r:.3f}", f"{f:.3f}"])
              + [f"{n:,}"] for c, p, r, f, n, k in zip(table["classes"], table["precision"], table["recall"],
                                                       table["f1"], table["support"], predicted)]
    caption = f"The recommended strategy's per-class scores on the test split{seeds}."
    if absent:
        caption += (f" No test example of {_listed(absent)}: no recall or F1, and not in the macro F1, which averages "
                    f"over the {len(table['classes']) - len(absent)} of {len(table['classes'])} classes the test split "
                    "holds.")
    validation = [run_outputs(run, "validation") for run in summary.runs]
    if validation and all(o is not None and o.labels is not None for o in validation):
        seen = set(np.concatenate([o.labels for o in validation]).tolist())
        unseen = [c for i, c in enumerate(table["classes"]) if i not in seen]
        if unseen:
            caption += (f" The validation split, which the choice is made on, holds no example of {_listed(unseen)}: "
                        f"its scores rest on {len(table['classes']) - len(unseen)} of {len(table['classes'])} classes.")
    return [
        Heading(f"Per class: {summary.strategy} on the test split", 3),
        Table(["Class", "Precision", "Recall", "F1", "Support"], scores, caption=caption),
        _confusion_table(table, seeds),
    ]


def _listed(names: list[str], most: int = 8) -> str:
    """``a, b and c``; past ``most`` names, ``a, b, ... and N more``."""
    shown = names[:most]
    rest = len(names) - len(shown)
    if rest:
        return ", ".join(shown) + f" and {rest} more"
    return and_list(shown)


#: Above this many classes the report lists the most frequent confusions instead of the whole matrix.
MATRIX_CLASSES = 12
TOP_CONFUSIONS = 15


def _confusion_table(table: dict, seeds: str) -> Table:
    """The confusion matrix, or for many classes (a matrix too wide to read) its largest off-diagonal cells."""
    classes, matrix = table["classes"], table["confusion"]
    if len(classes) <= MATRIX_CLASSES:
        rows = [[c, *[f"{v:,}" for v in row]] for c, row in zip(classes, matrix)]
        return Table(["Gold \\ predicted", *classes], rows, row_headers=True,
                     caption=f"Confusion matrix on the test split{seeds}: rows are the gold labels, columns the predictions.")
    cells = sorted(((int(v), i, j) for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j and v),
                   key=lambda cell: (-cell[0], cell[1], cell[2]))[:TOP_CONFUSIONS]
    rows = [[classes[i], classes[j], f"{v:,}", f"{v / max(1, sum(matrix[i])):.0%}"] for v, i, j in cells]
    return Table(["Gold", "Predicted as", "Examples", "Share of the gold class"], rows,
                 caption=f"The most frequent confusions on the test split{seeds} (the {len(classes)} × {len(classes)} matrix "
                         "is too wide to read; every example's prediction is in runs/<run>/outputs/test.npz).")


def _data_size_blocks(results: list[dict], recommendation: dict, metric: str) -> list[Block]:
    """How the strategies fare with more labelled data: fitted learning curves (4 or more fractions),
    else the measured points and the crossover they show."""
    crossover = crossover_from_fractions(results, metric)
    if len(crossover) < 2:
        return []
    label = metric_label(metric)
    curves = recommendation.get("learning_curves") or {}
    fitted = any(c["fitted"] for c in (curves.get("curves") or {}).values())
    if recommendation.get("planning") is not None and not fitted:
        return []  # a planned comparison's screening rounds, not a learning curve: the stops tell them
    with_full = any(r["full_mean"] is not None for r in crossover)
    blocks: list[Block] = [Heading("How much labelled data full fine-tuning needs" if with_full
                                   else "How the strategies fare with more labelled data")]
    if fitted:
        cross = curves.get("crossover") or {}
        if cross.get("statement"):  # the crossover with its interval, as the reasons say it
            blocks.append(Paragraph(cross["statement"]))
        elif cross.get("message"):
            blocks.append(Paragraph(f"Full fine-tuning ({curves.get('full')}) against the best frozen/PEFT strategy "
                                    f"({curves.get('partial')}), by the fitted validation curves: {cross['message']}."))
        headers, rows = learning_curve_rows(recommendation)
        blocks.append(Table(headers, rows, caption=f"Validation {label} against labelled training examples, inverse "
                            "power law fits with bootstrap intervals (see the learning-curve plot)."))
        return blocks
    sizes = len({r["n_train"] for r in crossover if r["n_train"] is not None}) or len(crossover)
    blocks.append(Paragraph(f"{too_few_sizes(len(crossover), sizes)}; the measured points are shown.", css="note"))
    statement = crossover_statement(crossover)
    if statement:
        blocks.append(Paragraph(statement))
    elif not any(r["full_mean"] is not None for r in crossover):
        blocks.append(Paragraph("Full fine-tuning was not run at several data fractions, so there is no crossover to report."))
    blocks.append(Table(
        ["Data fraction", "Training examples", "Best strategy", "Full", "Best frozen/PEFT", "Full better?"],
        [[f"{r['data_fraction']:g}", "–" if r["n_train"] is None else f"{r['n_train']:,}",
          f"{r['best_strategy']} ({format_metric(r['best_mean'], metric)})", format_metric(r["full_mean"], metric),
          "–" if r["best_frozen_or_peft"] is None
          else f"{r['best_frozen_or_peft']} ({format_metric(r['best_frozen_or_peft_mean'], metric)})",
          {True: "yes", False: "no", None: "–"}[r["full_beats"]]] for r in crossover],
        caption=f"Validation {label} per data fraction (mean over seeds).",
    ))  # fmt: skip
    return blocks


def _seed(run) -> Any:
    seed = as_record(run).run_info.seed
    return "–" if seed is None else seed


def _subtitle(results: list[dict], summaries: list, task: str) -> str:
    meta: dict[str, Any] = {}
    # the largest run first: a comparison's smaller fractions (learning curves, planned rounds) describe a subsample
    for run in sorted(results, key=lambda r: -(as_record(r).run_info.data_fraction or 1.0)):
        for key, value in as_record(run).meta_info.to_dict().items():
            meta.setdefault(key, value)
    parts = []
    if meta.get("model"):
        parts.append(f"model {meta['model']}")
    parts.append(f"task {task}")
    if meta.get("data"):
        parts.append(f"data {meta['data']}")
    if meta.get("device"):
        parts.append(f"device {meta['device']}")
    n_ok = sum(1 for r in results if run_succeeded(r))
    # every strategy that ran, also those a planned comparison stopped before the table's fraction
    n_strategies = len({as_record(r).run_info.strategy for r in results} or summaries)
    parts.append(f"{len(results)} run{'s' * (len(results) != 1)} ({n_ok} succeeded) over {n_strategies} "
                 f"strateg{'ies' if n_strategies != 1 else 'y'}")
    return "; ".join(parts) + "."


def _forgetting_note(summaries: list) -> str:
    """What the Forgetting column measured, on which reference text, once per unit the runs recorded."""
    said = {}
    for s in summaries:
        for r in s.runs:
            found = r.train_info.forgetting or {}
            text = forgetting_meaning(forgetting_unit_of(found), found.get("reference"))
            if text is not None:
                said.setdefault(text, None)
    return "".join(f" {text}" for text in said)


def _memory_note(summaries: list) -> str:
    kinds = {s.memory_kind for s in summaries if s.memory_kind}
    notes = []
    if "rss" in kinds:
        notes.append("rss: peak resident memory of the whole process (CPU), model and data included")
    if "cuda" in kinds:
        notes.append("cuda: peak GPU memory allocated by torch")
    return (" Peak memory — " + "; ".join(notes) + ".") if notes else ""


def _pre_recommendation_blocks(pre: dict, rec: dict, summaries: list, metric: str) -> list[Block]:
    blocks: list[Block] = [Heading("Before training vs measured")]
    predicted, measured = pre.get("strategy"), rec.get("strategy")
    if predicted and measured:
        verdict = (
            f"The recommendation made before training, {predicted}, matched the measured choice."
            if predicted == measured
            else f"The recommendation made before training, {predicted}, did not match the measured choice, {measured}."
        )
    elif predicted:
        verdict = f"Before training tunelab recommended {predicted}; the measurements gave no choice to compare it with."
    else:
        verdict = "The pre-training analysis made no recommendation."
    blocks.append(Paragraph(verdict, css="verdict"))

    by_name = {s.strategy: s for s in summaries}
    if predicted and measured and predicted != measured and predicted in by_name:
        p, m = by_name[predicted], by_name[measured]
        # the test split, or validation where a planned comparison measured no test (its rounds before the last)
        split = "test" if p.test_mean is not None and m.test_mean is not None else "validation"
        pv, mv = (p.test_mean, m.test_mean) if split == "test" else (p.val_mean, m.val_mean)
        if p.ok and m.ok and pv is not None and mv is not None:
            blocks.append(
                Paragraph(
                    f"Measured, {predicted} reached {format_metric(pv, metric)} {split} {metric_label(metric)} "
                    f"({describe_gap(pv, mv, metric)} {measured}) in "
                    f"{format_seconds(p.train_time_s)} with {format_mb(p.peak_memory_mb)} peak memory; "
                    f"{measured} took {format_seconds(m.train_time_s)} and {format_mb(m.peak_memory_mb)}."
                )
            )
        elif not p.ok:
            blocks.append(Paragraph(f"{predicted} failed when trained: {p.error}."))
    elif predicted and predicted not in by_name:
        blocks.append(Paragraph(_left_before_the_table(predicted, rec, metric)))

    if pre.get("reasons"):
        blocks.append(Heading("Reasons given before training", 3))
        blocks.append(BulletList([str(r) for r in pre["reasons"]]))
    # the signals no reason states (an advice recorded before reasons said which they state: every signal)
    stated = [key for states in pre.get("reason_states") or [] for key in states]
    signals = format_signals(pre.get("signals"), stated=stated)
    if signals:
        blocks.append(Heading("Other signals measured before training" if stated else "Signals measured before training", 3))
        blocks.append(BulletList(signals))
    estimates = pre.get("estimates")
    if estimates:
        blocks.append(Heading("Estimates vs measured", 3))
        blocks.extend(_estimate_blocks(estimates, by_name))
    return blocks


def _left_before_the_table(strategy: str, rec: dict, metric: str) -> str:
    """What became of a strategy the results table has no row of: one a planned comparison stopped (or lost to a
    failure) in an earlier round (its planner record), else one that was not compared."""
    stop = next((s for s in (rec.get("planning") or {}).get("stopped") or [] if s["strategy"] == strategy), None)
    if stop is None:
        return f"{strategy} was not among the strategies compared."
    if stop["status"] != "stopped_early":
        return f"{strategy} was compared but {stop_note(stop)}."
    measured = (stop.get("prediction") or {}).get("measured")
    at = (f", at {format_metric(measured, metric)} validation {metric_label(metric)} measured there"
          if measured is not None else "")
    return (f"{strategy} was compared but stopped early, after round {stop['round']} (data fraction "
            f"{stop['data_fraction']:g}; {stop['reason']}){at}: it has no numbers on all the data to set against "
            f"{rec.get('strategy') or 'the measured choice'}'s; why it stopped: the section Stopped early.")


_MEASURED = {
    "train_time_s": ("training time", lambda s: s.train_time_s, format_seconds),
    "peak_memory_mb": ("peak memory", lambda s: s.peak_memory_mb, format_mb),
    "trainable_share": ("trainable share", lambda s: s.trainable_share, format_share),
    "trainable_params": ("trainable params", lambda s: s.mean_of(lambda r: r.train_info.trainable_params), lambda v: f"{v:,.0f}"),
}


def _estimate_blocks(estimates: Any, by_name: dict) -> list[Block]:
    """Per-strategy estimates (``{strategy: {field: value}}``) beside what was measured; anything else
    is listed as given."""
    if isinstance(estimates, list) and all(isinstance(e, dict) and "strategy" in e for e in estimates):
        estimates = {e["strategy"]: {k: v for k, v in e.items() if k != "strategy"} for e in estimates}
    if isinstance(estimates, dict) and estimates and all(isinstance(v, dict) for v in estimates.values()):
        # Estimates can be wide (batch shapes, notes, ...): show what can be set against a measurement,
        # else the first few plain numbers.
        present = list(dict.fromkeys(k for v in estimates.values() for k in v))
        fields = [k for k in _MEASURED if k in present] or [
            k for k in present if all(isinstance(v.get(k), int | float | type(None)) for v in estimates.values())
        ][:6]
        if not fields:
            return [BulletList([f"{k}: {_text(v)}" for k, v in estimates.items()])]
        headers = ["Strategy"]
        for name in fields:
            headers.append(f"{_MEASURED[name][0]}: estimate / measured" if name in _MEASURED else name.replace("_", " "))
        rows = []
        for strategy, values in estimates.items():
            row = [str(strategy)]
            summary = by_name.get(strategy)
            for name in fields:
                value = values.get(name)
                if name in _MEASURED:
                    _, get, fmt = _MEASURED[name]
                    est = fmt(value) if isinstance(value, int | float) and math.isfinite(value) else _text(value)
                    got = get(summary) if summary is not None and summary.ok else None
                    row.append(f"{est} / {fmt(got) if got is not None else '–'}")
                else:
                    row.append(_text(value))
            rows.append(row)
        return [Table(headers, rows)]
    return [BulletList(format_signals(estimates))]


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _environment_blocks(results: list[dict]) -> list[Block]:
    meta: dict[str, Any] = {}
    # The runs at the largest fraction first, so n_train is the one the results table shows.
    largest = largest_fraction(results)
    for run in sorted(results, key=lambda r: (run_fraction(r) != largest, not run_succeeded(r))):
        for key, value in as_record(run).meta_info.to_dict().items():
            meta.setdefault(key, value)
    if not meta:
        return []
    items = []
    for key in ("model", "task", "data", "data_fingerprint", "device", "n_train", "n_validation", "n_test"):
        if meta.get(key) is not None:
            items.append(f"{key.replace('_', ' ')}: {meta[key]}")
    if meta.get("label_names"):
        items.append(f"labels ({len(meta['label_names'])}): {', '.join(map(str, meta['label_names'][:20]))}"
                     + (", …" if len(meta["label_names"]) > 20 else ""))
    versions = meta.get("versions")
    if isinstance(versions, dict) and versions:
        items.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    items.append("every run, with all its fields: results.csv")
    return [Heading("Environment"), BulletList(items)]
