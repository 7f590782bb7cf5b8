"""The comparison as tables: one row per strategy, every run as CSV, a rich console table, and the
"axes" table that sets the strategies side by side on the dimensions people weigh them by."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.advice.choose import (
    StrategySummary,
    data_regime,
    describe_data_regime,
    format_count,
    format_mb,
    format_metric,
    format_metric_pm,
    format_seconds,
    format_share,
    largest_fraction,
    metric_label,
    recommend_from_results,
    results_task,
    run_fraction,
    run_strategy,
    strategy_sort_key,
    summarize_strategies,
)
from tunelab.advice.verdict import as_compared
from tunelab.config import TrainConfig
from tunelab.io import atomic_write_text
from tunelab.run.record import RunRecord, as_record
from tunelab.units import format_rate

if TYPE_CHECKING:
    from rich.table import Table


def results_table(results: list[dict], *, recommendation: dict | None = None) -> list[dict]:
    """One row per strategy at the largest data fraction, seeds aggregated; failed strategies included.

    The metric and the intervals are the recommendation's (:func:`tunelab.advice.choose.recommend_from_results`;
    computed here, with its defaults, when not given).

    Each row: ``strategy``, ``status`` (``"success"``, ``"success (k failed)"`` or ``"failed"``),
    ``error``, ``n`` (seeds that succeeded), ``metric``, ``test_mean``, ``test_std``, ``val_mean``,
    ``val_std``, ``validation`` and ``test`` (estimate and interval as plain values, or None), ``level``,
    ``trainable_params``, ``total_params``, ``trainable_share_pct``, ``peak_memory_mb``,
    ``memory_kind``, ``train_time_s``, ``eval_time_s``, ``samples_per_s``, ``artifact_size_mb``,
    ``forgetting`` and ``forgetting_unit`` (what the run lost on a reference text), ``data_fraction``, ``n_train``. Numbers are means over seeds; None where not measured.
    """
    if recommendation is None:
        recommendation = recommend_from_results(results)
    ranked = {r["strategy"]: r for r in recommendation.get("ranking") or []}
    level = 1.0 - float(recommendation.get("alpha") or 0.05)
    rows = []
    for s in summarize_strategies(results, metric=recommendation.get("metric")):
        share = s.trainable_share
        rank = ranked.get(s.strategy) or (_own_intervals(s, level) if s.ok else {})
        rows.append(
            {
                "strategy": s.strategy,
                "status": s.status,
                "error": s.error,
                "n": s.n,
                "metric": s.metric,
                "test_mean": s.test_mean,
                "test_std": s.test_std,
                "val_mean": s.val_mean,
                "val_std": s.val_std,
                "validation": rank.get("validation"),
                "test": rank.get("test"),
                "level": level,
                "trainable_params": s.mean_of(lambda r: r.train_info.trainable_params),
                "total_params": s.mean_of(lambda r: r.train_info.total_params),
                "trainable_share_pct": None if share is None else 100.0 * share,
                "peak_memory_mb": s.peak_memory_mb,
                "memory_kind": s.memory_kind,
                "train_time_s": s.train_time_s,
                "eval_time_s": s.mean_of(lambda r: r.train_info.eval_time_s),
                "samples_per_s": s.mean_of(lambda r: r.train_info.samples_per_s),
                "artifact_size_mb": s.mean_of(lambda r: r.artifact and r.artifact.size_mb),
                "forgetting": s.forgetting,
                "forgetting_unit": s.forgetting_unit,
                "data_fraction": s.data_fraction,
                "n_train": s.n_train,
                "stop": None,
            }
        )
    _mark_stopped_at_the_end(rows, recommendation)
    rows.extend(_left_before_the_end(rows, recommendation))
    return rows


def _own_intervals(s: StrategySummary, level: float) -> dict[str, Any]:
    """The intervals of a strategy the verdict did not rank (one a planned comparison stopped after the full data's
    first seed), computed as the verdict computes every other's."""
    from tunelab.advice.verdict import interval_dict, metric_interval

    return {split: interval_dict(metric_interval(s, split, s.metric, level=level), split)
            for split in ("validation", "test")}


def _mark_stopped_at_the_end(rows: list[dict], recommendation: dict) -> None:
    """A strategy a planned comparison stopped at the data fraction of the table (after the full data's first seed,
    :func:`tunelab.compare.planner.rungs`) keeps its measured numbers, with the status ``stopped early`` and its stop:
    it is not a finalist, and the verdict did not rank it."""
    stops = {s["strategy"]: s for s in (recommendation.get("planning") or {}).get("stopped") or []
             if s["status"] == "stopped_early"}
    for row in rows:
        stop = stops.get(row["strategy"])
        if stop is None or not math.isclose(stop["data_fraction"], row["data_fraction"]):
            continue
        if row["val_mean"] is not None:
            row["status"], row["stop"] = f"stopped early ({row['n']} seed{'s' if row['n'] != 1 else ''})", stop
        elif stop["reason"] == "budget":  # its run was interrupted by the budget, not failed: the stop says so
            row["status"], row["error"], row["stop"] = "stopped early", None, stop


def _left_before_the_end(rows: list[dict], recommendation: dict) -> list[dict]:
    """A row for each strategy a planned comparison stopped (or lost to a failure) before the final round:
    no numbers (they would be from less data), its status and why (``stop``: the planner's record)."""
    planning = recommendation.get("planning") or {}
    shown = {row["strategy"] for row in rows}
    extra = []
    for stop in planning.get("stopped") or []:
        if stop["strategy"] in shown:
            continue
        early = stop["status"] == "stopped_early"
        extra.append({
            "strategy": stop["strategy"], "status": "stopped early" if early else "failed",
            "error": None if early else stop["message"], "n": 0, "metric": recommendation.get("metric") or "accuracy",
            "test_mean": None, "test_std": None, "val_mean": None, "val_std": None, "validation": None, "test": None,
            "level": 1.0 - float(recommendation.get("alpha") or 0.05), "trainable_params": None, "total_params": None,
            "trainable_share_pct": None, "peak_memory_mb": None, "memory_kind": None, "train_time_s": None,
            "eval_time_s": None, "samples_per_s": None, "artifact_size_mb": None, "forgetting": None,
            "forgetting_unit": None, "data_fraction": stop["data_fraction"], "n_train": None, "stop": stop,
        })  # fmt: skip
    return extra


def stop_note(stop: dict, *, short: bool = False) -> str:
    """What a stopped strategy's row says instead of numbers (``short``: the reason's name instead of its message,
    for the console, which prints the messages under the table)."""
    if short:  # the Status column says "stopped early" or "failed"
        where = f"round {stop['round']}" if stop["round"] else "before round 1"
        return f"{where}: {stop['reason'] if stop['status'] == 'stopped_early' else 'failed'}"
    if stop["status"] != "stopped_early":
        return f"failed in round {stop['round']} (data fraction {stop['data_fraction']:g}): {stop['message']}"
    where = where_stopped(stop)
    return f"stopped early {where}: {stop['message']}" if where else f"stopped early {stop['message']}"


def where_stopped(stop: dict) -> str | None:
    """``after round R (data fraction F)`` for a stop whose message does not say so itself (budget stops); ``None``
    for one whose message starts with it (the planner's halving and "behind" stops)."""
    if stop["message"].startswith("after round"):
        return None
    if not stop["round"]:  # stopped before its first run (the budget spent before round 1)
        return "before its first round"
    return f"after round {stop['round']} (data fraction {stop['data_fraction']:g})"


RESULTS_HEADERS = (
    "Strategy",
    "Status",
    "Validation {metric} [{level} CI]",
    "Test {metric} [{level} CI]",
    "Trainable params",
    "Trainable share",
    "Peak memory",
    "Train time",
    "Eval time",
    "Samples/s",
    "Artifact",
    "Forgetting",
)


def run_notes(results: list[dict]) -> list[str]:
    """The runs' notes (what the data loading and training noticed: truncated texts, dropped duplicates, a split
    that could not be stratified, a cache that fell back), once each: those of the runs at the largest data
    fraction, a note that not every strategy there has followed by the strategies that have it; then a smaller
    fraction's note that the largest does not have at another size (a subset without a class), with its runs."""
    largest = largest_fraction(results)
    runs = [r for r in results if run_fraction(r) == largest]
    strategies = list(dict.fromkeys(run_strategy(r) for r in runs))
    having: dict[str, list[str]] = {}
    for run in runs:
        for note in as_record(run).train_info.notes or []:
            owners = having.setdefault(str(note), [])
            if run_strategy(run) not in owners:
                owners.append(run_strategy(run))
    notes = [note if len(owners) == len(strategies) else f"{note} ({', '.join(owners)})"
             for note, owners in having.items()]
    # a smaller fraction's note that is not the largest's at another size (a subset that lacks a class) is said too,
    # with the runs that have it: it bears on the learning curve's points
    shapes = {_shape(note) for note in having}
    others: dict[str, list[str]] = {}
    for run in sorted((r for r in results if run_fraction(r) != largest), key=run_fraction):
        for note in as_record(run).train_info.notes or []:
            if _shape(str(note)) not in shapes:
                owners = others.setdefault(str(note), [])
                name = f"{run_strategy(run)} at data fraction {run_fraction(run):g}"
                if name not in owners:
                    owners.append(name)
    return notes + [f"{note} ({', '.join(owners)})" for note, owners in others.items()]


def _shape(note: str) -> str:
    """A note with its numbers blanked: the same note at another data fraction's size."""
    return re.sub(r"\d[\d,.]*", "#", note)


def results_table_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """:func:`results_table` rows as display strings: ``(headers, cells)``, one cell list per row."""
    metric = rows[0]["metric"] if rows else "accuracy"
    level = f"{100 * rows[0]['level']:g} %" if rows else "95 %"
    headers = [h.format(metric=metric_label(metric), level=level) for h in RESULTS_HEADERS]
    cells = []
    for row in rows:
        cells.append(
            [
                row["strategy"],
                row["status"],
                format_with_interval(row["validation"], row["val_mean"], row["val_std"], row["n"], metric),
                format_with_interval(row["test"], row["test_mean"], row["test_std"], row["n"], metric),
                format_count(row["trainable_params"]),
                format_share(None if row["trainable_share_pct"] is None else row["trainable_share_pct"] / 100),
                format_mb(row["peak_memory_mb"]),
                format_seconds(row["train_time_s"]),
                format_seconds(row["eval_time_s"]),
                format_rate(row["samples_per_s"]),
                format_mb(row["artifact_size_mb"]),
                format_forgetting(row["forgetting"], row["forgetting_unit"]),
            ]
        )
    return headers, cells


def format_forgetting(value: float | None, unit: str | None) -> str:
    """``0.012 nats/token`` / ``0.034 (1 - CKA)``; a drift (never negative) below 0.0005 with two significant
    digits (``0.00042``: LoRA's drift is not head's exact 0), a loss change that small as 0.000 (its noise);
    ``–`` when not measured."""
    if value is None:
        return "–"
    small_drift = unit != "nats/token" and 0 < value < 0.0005
    text = f"{value:.2g}" if small_drift else f"{round(value, 3) + 0.0:.3f}"  # + 0.0: not -0.000
    return f"{text} nats/token" if unit == "nats/token" else f"{text} ({unit or 'drift'})"


def results_table_intervals(results: list[dict], recommendation: dict | None = None) -> dict[str, dict]:
    """Each strategy's test metric with its interval (plain values: ``estimate``, ``low``, ``high``, ``level``,
    ``method``, ``n_seeds``, and the row's ``metric``), exactly as the results table gives it: one source,
    :func:`results_table` (the recommendation's intervals; computed there when not given).
    Strategies without an interval (one seed, no saved per-example outputs) are left out."""
    intervals: dict[str, dict] = {}
    for row in results_table(results, recommendation=recommendation):
        if row.get("test") and row["strategy"] not in intervals:
            intervals[row["strategy"]] = {**row["test"], "metric": row["metric"]}
    return intervals


def format_with_interval(interval: dict | None, mean: float | None, std: float | None, n: int, metric: str) -> str:
    """``0.801 [0.775, 0.826]`` from an interval (plain values, as the recommendation holds them), else
    the mean (± std over seeds) when there is no interval, else ``–``."""
    if interval is not None:
        return (f"{format_metric(interval['estimate'], metric)} "
                f"[{format_metric(interval['low'], metric)}, {format_metric(interval['high'], metric)}]")
    return format_metric_pm(mean, std, n, metric)


def learning_curve_rows(recommendation: dict) -> tuple[list[str], list[list[str]]]:
    """The fitted learning curves as ``(headers, rows)``: per strategy the measured validation points,
    the fitted asymptote and the predictions at 2× and 5× the labels with their intervals."""
    curves = recommendation.get("learning_curves") or {}
    metric = curves.get("metric") or recommendation.get("metric") or "accuracy"
    rows = []
    horizons: list[str] = []
    for name in sorted(curves.get("curves") or {}, key=strategy_sort_key):
        c = curves["curves"][name]
        measured = ", ".join(f"{n:,.0f}: {format_metric(y, metric)}" for n, y in zip(c["n"], c["y"]))
        if not c["fitted"]:
            rows.append([name, measured, "–", "no fit: " + c["reason"]])
            continue
        preds = [f"{p['n']:,.0f}: {format_metric(p['estimate'], metric)} [{format_metric(p['low'], metric)}, "
                 f"{format_metric(p['high'], metric)}]" for p in c["predictions"]]
        horizons = horizons or [f"{p['n'] / max(c['n']):g}×" for p in c["predictions"]]
        asymptote = format_metric(c["a"], metric)
        if c.get("a_low") is not None and c.get("a_high") is not None:
            asymptote += f" [{format_metric(c['a_low'], metric)}, {format_metric(c['a_high'], metric)}]"
        rows.append([name, measured, asymptote, "; ".join(preds)])
    level = f"{100 * (1 - float(recommendation.get('alpha') or 0.05)):g} %"
    headers = ["Strategy", f"Measured validation {metric_label(metric)} (training examples: value)",
               f"Asymptote [{level} CI]", f"Predicted at {' and '.join(horizons) or '2× and 5×'} the labels [{level} CI]"]
    return headers, rows


def learning_curve_table(recommendation: dict) -> Table:
    """:func:`learning_curve_rows` as a rich table, with the crossover as its caption."""
    from rich.table import Table
    from rich.text import Text

    headers, rows = learning_curve_rows(recommendation)
    cross = (recommendation.get("learning_curves") or {}).get("crossover") or {}
    caption = cross.get("statement") or (f"full fine-tuning vs the best frozen/PEFT strategy: {cross['message']}"
                                         if cross.get("message") else None)
    table = Table(title="learning curves (validation, inverse power law)", header_style="bold", caption=caption)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*[Text(c) for c in row])
    return table


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Every run, flattened


_SECTIONS = ("run_info", "metrics", "train_info", "meta_info", "artifact", "config")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list | tuple):
        out[prefix] = json.dumps(value, default=str)
    else:
        out[prefix] = value


def flatten_run(run: RunRecord | dict) -> dict[str, Any]:
    """A run record as one flat dict with dotted keys (``metrics.test.accuracy``); lists become JSON. A successful
    run's metrics are the comparison's (:func:`~tunelab.advice.verdict.run_value`: from its saved outputs with today's
    definitions); where its ``metrics.json`` recorded another value, that one is kept beside it
    (``metrics.recorded.validation.f1_macro``)."""
    run = as_compared(run)
    out: dict[str, Any] = {}
    for section in _SECTIONS:
        if section in run:
            _flatten(run[section], section, out)
    for key, value in run.items():
        if key not in _SECTIONS:
            _flatten(value, key, out)
    return out


def write_results_csv(path: str | Path, results: list[dict]) -> Path:
    """Write every run (all seeds and fractions, failed ones too) as one CSV row with flattened
    columns (``run_info.strategy``, ``metrics.test.accuracy``, ``train_info.peak_memory_mb``, ...).

    Columns are the union over runs, in first-seen order; missing values are empty. Returns the path.
    """
    flat = [flatten_run(run) for run in results]
    columns: dict[str, None] = {}
    for row in flat:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


# --------------------------------------------------------------------------------------------------
# Console


def console_table(results: list[dict], *, highlight: str | None = None, recommendation: dict | None = None) -> Table:
    """The results table as a :class:`rich.table.Table` (failed strategies in red, ``highlight``
    — e.g. the recommended strategy — in bold green), with the recommendation's intervals.

    >>> from rich.console import Console
    >>> Console().print(console_table(runs))   # doctest: +SKIP
    """
    from rich.table import Table
    from rich.text import Text

    rows = results_table(results, recommendation=recommendation)
    headers, cells = results_table_cells(rows)
    fraction = rows[0]["data_fraction"] if rows else None
    title = "tunelab comparison"
    if fraction and not math.isclose(fraction, 1.0):  # 0: a strategy stopped before round 1 ran nothing
        title += f" (data fraction {fraction:g})"
    table = Table(title=title, header_style="bold", show_lines=False)
    with_errors = any(row["error"] for row in rows)
    stopped = any(row.get("stop") for row in rows)
    last = "Error or why stopped" if stopped and with_errors else ("Stopped early" if stopped else "Error")
    for i, header in enumerate([*headers, *([last] if with_errors or stopped else [])]):
        table.add_column(header, justify="left" if i < 2 or header == last else "right",
                         no_wrap=i == 0, overflow="fold", max_width=48 if header == last else None)
    for row, row_cells in zip(rows, cells):
        style = None
        if row.get("stop") and row["stop"]["status"] == "stopped_early":
            style = "yellow"
        elif row["val_mean"] is None:
            style = "red"
        elif row["strategy"] == highlight:
            style = "bold green"
            row_cells = [f"{row_cells[0]} (recommended)", *row_cells[1:]]
        if with_errors or stopped:
            note = stop_note(row["stop"], short=True) if row.get("stop") else row["error"] or ""
            row_cells = [*row_cells, _shorten(note, 200)]
        table.add_row(*[Text(c) for c in row_cells], style=style)
    return table


# --------------------------------------------------------------------------------------------------
# The comparison axes


def _strategy(name: str) -> Any:
    """The registered strategy called ``name``, or ``None`` for a name no strategy has (an old record)."""
    from tunelab.strategies import STRATEGIES  # with the first description, not with this module

    cls = STRATEGIES.get(name)
    return cls() if cls is not None else None


def _run_config(summary: StrategySummary) -> TrainConfig:
    """The strategy's run config as recorded (``config``), with tunelab's defaults for fields it lacks."""
    recorded = summary.config() or {}
    known = set(TrainConfig.field_names())
    return TrainConfig(**{key: value for key, value in recorded.items() if key in known})


def _approach(strategy: str) -> str:
    found = _strategy(strategy)
    return found.kind.label if found is not None else "not described"


def what_trains(summary: StrategySummary, task: str) -> str:
    """Which weights a strategy trains, with its run's own settings (:meth:`tunelab.strategies.Strategy.describe`;
    the model's depth from ``meta_info.num_blocks`` where the record has it)."""
    found = _strategy(summary.strategy)
    if found is None:
        return "not described"
    num_blocks = summary.meta("num_blocks")
    return found.describe(_run_config(summary), task, num_blocks=int(num_blocks) if num_blocks is not None else None)


def _architecture(summary: StrategySummary, task: str) -> str:
    found = _strategy(summary.strategy)
    if found is None:
        return "not described"
    added = found.adds(_run_config(summary))
    parts = [p for p in (added, "a new classification head" if task == "classification" else None) if p]
    return "adds " + " and ".join(parts) if parts else "unchanged"


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        if "value" in value:
            text = _format_value(value["value"])
            for key in ("interpretation", "meaning", "note", "verdict"):
                if value.get(key):
                    text += f" ({value[key]})"
                    break
            return text
        return ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value)
    return str(value)


def format_signals(signals: Any, *, stated: Any = ()) -> list[str]:
    """Pre-training signals (the advice's flat ``signals``, or any ``{"domain_lm_loss_ratio": 1.4, ...}``) as lines a
    reader can use, each fact once: the advice's known signals in a line per topic (:data:`_SIGNAL_LINES`), what only
    repeats another (the probe in the metric asked for when that is accuracy) or is bookkeeping (whether the probe was
    read back from tunelab's store, how long it took) in none, anything else as ``"domain LM loss ratio: 1.4"``, whatever
    its nesting. ``stated``: the keys whose values are said elsewhere (the advice's reasons, its ``reason_states``): left
    out, a topic's line saying what remains of it."""
    if not signals:
        return []
    if not isinstance(signals, dict):
        return [_format_value(signals)]
    rest = {k: v for k, v in signals.items() if k not in _UNSAID and k not in set(stated)}
    lines = [line for say in _SIGNAL_LINES if (line := say(rest))]
    for key, value in rest.items():
        label = re.sub(r"\blm\b", "LM", str(key).replace("_", " "))
        lines.append(_shorten(f"{label}: {_format_value(value)}", 300))
    return lines


#: Bookkeeping: whether the probe's result was read back from tunelab's store (the same numbers), and its time (the
#: cost line says the pass's).
_UNSAID = ("signals_reused", "probe_time_s")


def _take(signals: dict, *keys: str) -> list[Any]:
    """The values of ``keys`` (``None`` where absent), taken out of ``signals``: the line that says them owns them."""
    return [signals.pop(key, None) for key in keys]


def _said_data(signals: dict) -> str | None:
    keys = ("train_examples", "train_tokens", "min_examples_per_class", "data_amount")
    if not any(key in signals for key in keys):
        return None
    n, tokens, smallest, amount = _take(signals, *keys)
    size = f"{_format_value(tokens)} tokens" if tokens else ""
    if n is not None:
        size = f"{_format_value(n)} examples" + (f" ({size})" if size else "")
    if smallest is not None:
        size += (", " if size else "") + f"{_format_value(smallest)} in the smallest class"
    return "training data" + (f": {size}" if size else "") + (f": {amount}" if amount else "")


def _said_length(signals: dict) -> str | None:
    keys = ("mean_tokens", "median_tokens", "p95_tokens", "truncated_share")
    if not any(key in signals for key in keys):
        return None
    mean, median, p95, truncated = _take(signals, *keys)
    spread = ", ".join(f"{name} {_format_value(v)}" for name, v in (("median", median), ("p95", p95)) if v is not None)
    parts = [f"{mean:.1f} tokens on average" + (f" ({spread})" if spread else "") if mean is not None else spread or None,
             f"{100 * truncated:.1f} % cut at --max-length" if truncated is not None else None]
    return "text length: " + ", ".join(p for p in parts if p)


def _said_probe(signals: dict) -> str | None:
    keys = ("probe_accuracy", "probe_gain", "probe_metric", "probe_score", "probe_score_gain")
    if not any(key in signals for key in keys):
        return None
    accuracy, gain, metric, score, score_gain = _take(signals, *keys)
    if accuracy is None and score is None:
        return "head probe: not run (a class has a single training example, which no fold can hold out)"

    def scored(value: float, share: float | None, label: str) -> str:
        return f"{label} {value:.3f}" + (f", {share:.2f} of the way from the majority class to perfect"
                                         if share is not None else "")

    said = [scored(accuracy, gain, "accuracy")] if accuracy is not None else []
    if score is not None and (accuracy is None or (metric and metric != "accuracy")):  # else the same numbers again
        said.append(scored(score, score_gain, metric_label(metric or "accuracy")))
    return "head probe (a logistic regression on the frozen model's features, cross-validated): " + "; ".join(said)


def _said_transferability(signals: dict) -> str | None:
    if "logme" not in signals and "h_score" not in signals:
        return None
    logme, h = _take(signals, "logme", "h_score")
    said = [f"LogME {logme:.2f}" if logme is not None else None, f"H-score {h:.3f}" if h is not None else None]
    return "transferability of the frozen features (higher is better): " + ", ".join(p for p in said if p)


def _said_domain(signals: dict) -> str | None:
    method = signals.get("domain_signal")
    if "domain_level" not in signals and not (method and method in signals):
        return None
    level, method = _take(signals, "domain_level", "domain_signal")
    said = [f"{level} to pre-training"] if level else []
    if method and method in signals:
        value = signals.pop(method)
        label = re.sub(r"\blm\b", "LM", method.replace("_", " "))
        text = f"by {label} {_format_value(value)}"
        if method == "centroid_distance" and signals.get("reference_split_distance") is not None:
            text += f" (between two halves of the reference text: {signals.pop('reference_split_distance'):.3f})"
        said.append(text)
    return "domain: " + ", ".join(said)


def _said_tokenizer(signals: dict) -> str | None:
    keys = ("tokens_per_word_target", "tokens_per_word_reference", "fragmentation_ratio", "unk_share",
            "unk_share_reference")
    if not any(key in signals for key in keys):
        return None
    target, reference, ratio, unk, unk_reference = _take(signals, *keys)
    said = []
    if target is not None:
        text = f"{target:.2f} tokens per word"
        if reference is not None:
            text += f" vs {reference:.2f} on the reference text" + (f" (×{ratio:.2f})" if ratio is not None else "")
        said.append(text)
    elif reference is not None or ratio is not None:
        said.append(", ".join(p for p in (f"{reference:.2f} tokens per word on the reference text" if reference is not None
                                          else None, f"×{ratio:.2f} tokens per word" if ratio is not None else None) if p))
    if unk is not None:
        said.append(f"unknown tokens {100 * unk:.2f} %" + (f" (reference {100 * unk_reference:.2f} %)"
                                                          if unk_reference is not None else ""))
    elif unk_reference is not None:
        said.append(f"unknown tokens on the reference text {100 * unk_reference:.2f} %")
    return "tokenizer: " + "; ".join(said)


def _said_cost(signals: dict) -> str | None:
    if "feature_time_s" not in signals:
        return None
    seconds, n = _take(signals, "feature_time_s", "feature_examples")
    return (f"cost of these signals: one pass of the frozen model over {_format_value(n) if n else 'the'} training "
            f"texts, {format_seconds(seconds)}")


_SIGNAL_LINES = (_said_data, _said_length, _said_probe, _said_transferability, _said_domain, _said_tokenizer,
                 _said_cost)


def axes_table(
    results: list[dict], *, pre_recommendation: dict | None = None, metric: str | None = None,
    recommendation: dict | None = None,
) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The strategies along the comparison axes, filled with this run's numbers.

    Returns ``(strategies, rows)``: each row is ``(axis, one cell per strategy)``. Axes: approach,
    what trains, architecture, share of weights trained, peak memory, training time, test metric
    (all measured except the first three), data regime (from ``meta_info``) and closeness of domain
    (``pre_recommendation["signals"]`` when given, else "not measured"; its level alone where one of the advice's reasons
    states the measurements, ``reason_states``). ``metric``: the comparison's (default: the task's). ``recommendation``:
    the comparison's verdict, whose intervals the test metric carries as the results table shows them (without it, the
    mean ± std over seeds).
    """
    task = results_task(results)
    summaries = summarize_strategies(results, metric=metric)
    strategies = [s.strategy for s in summaries]
    pre = pre_recommendation or {}
    # closeness of domain: the domain analysis alone when the pre-training recommendation has one
    # (its "signals" also hold data statistics, which the data-regime row already covers)
    domain_info = pre.get("domain") if isinstance(pre.get("domain"), dict) else None
    if domain_info and isinstance(domain_info.get("signals"), dict):
        level = domain_info.get("level")
        signals = format_signals({**({"domain_level": level} if level else {}), **domain_info["signals"]})
    else:
        signals = format_signals(pre.get("signals"))
    domain = "; ".join(signals) if signals else "not measured"
    level = (domain_info or {}).get("level") or (pre.get("signals") or {}).get("domain_level")
    if level and any("domain_level" in states for states in pre.get("reason_states") or []):
        # a reason before training states the domain's measurements: here its level alone, the numbers said there
        domain = f"{level} to pre-training (its measurements: the reasons given before training)"

    def measured(s: StrategySummary, text: str) -> str:
        return text if s.ok else "failed"

    def share(s: StrategySummary) -> str:
        trainable, total = s.mean_of(lambda r: r.train_info.trainable_params), s.mean_of(lambda r: r.train_info.total_params)
        text = format_share(s.trainable_share)
        if trainable is not None and total:
            text += f" ({_compact(trainable)} of {_compact(total)})"
        return text

    def timing(s: StrategySummary) -> str:
        text = format_seconds(s.train_time_s)
        speed = s.mean_of(lambda r: r.train_info.samples_per_s)
        return text + (f", {speed:,.1f} samples/s" if speed is not None else "")

    def memory(s: StrategySummary) -> str:
        return format_mb(s.peak_memory_mb) + (f" ({s.memory_kind})" if s.memory_kind else "")

    # the test metric with its interval, as the results table has it
    intervals = results_table_intervals(results, recommendation) if recommendation is not None else {}

    def tested(s: StrategySummary) -> str:
        return format_with_interval(intervals.get(s.strategy), s.test_mean, s.test_std, s.n, s.metric)

    label = metric_label(summaries[0].metric) if summaries else "metric"
    rows = [
        ("Approach", [_approach(s.strategy) for s in summaries]),
        ("What trains", [what_trains(s, task) for s in summaries]),
        ("Architecture", [_architecture(s, task) for s in summaries]),
        ("Share of weights trained", [measured(s, share(s)) for s in summaries]),
        ("Peak memory", [measured(s, memory(s)) for s in summaries]),
        ("Training time", [measured(s, timing(s)) for s in summaries]),
        (f"Test {label}", [measured(s, tested(s)) for s in summaries]),
        ("Data regime", [describe_data_regime(data_regime(s), task) for s in summaries]),
        ("Closeness of domain", [domain for _ in summaries]),
    ]
    return strategies, rows


def _compact(count: float) -> str:
    """``12.3K``, ``4.4M``, ``1.1B``."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return f"{count:.0f}"

