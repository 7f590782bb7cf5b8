"""Compare strategies on the same data split and budget, then recommend one from the measurements.

By default the runs go in rounds within a time budget (:mod:`tunelab.compare.planner`: every strategy on a
small fraction of the data first, then more data only for those that can still catch up with the leader);
``exhaustive=True`` trains every strategy × seed × fraction to the end. Each run trains in its own
process (``python -m tunelab.run.worker``), so its peak memory is its own and a crash or an
out-of-memory kill takes down only that run: it is recorded as failed, with its message, and the
comparison goes on.

    >>> from tunelab import TrainConfig
    >>> from tunelab.compare.runner import compare
    >>> result = compare(TrainConfig(model="minilm", data="rotten-tomatoes", epochs=2),
    ...                  ["head", "lora", "full"], out="runs/compare")        # doctest: +SKIP
    >>> result.recommendation["strategy"], result.report["html"]              # doctest: +SKIP

What lands in ``out``::

    runs/<run_id>/metrics.json   one record per run (tunelab.run.record), the artifact under model/,
                                 spec.json (what the worker was asked) and worker.log (its output)
    lr-search/<strategy>-lr<lr>/ the learning-rate search runs (with tune_lr=True)
    compare.json                 the plan: strategies, seeds, fractions, base config, lr search
    pre_recommendation.json      tunelab recommend's advice before training (reused by resume)
    results.csv, report.html, report.md, plots/
    recommendation.json          the verdict: the choice, its reasons, each strategy's intervals and paired test

Fairness: every strategy trains on the same split (``split_seed`` = the base config's seed, also for
the other seeds: they vary initialisation and data order, not the examples), for the same number of
epochs, each with its own default learning rate — or, with ``tune_lr=True``, the best of a short
search around that default on the validation split — so that no strategy loses only because it was
given another's learning rate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.compare.executors import (
    SKIPPED,
    Executor,
    Job,
    LocalExecutor,
    execute,
    interrupted,
    stopped_by_budget,
)
from tunelab.compare.planner import HALVING
from tunelab.compare.progress import CompareDisplay
from tunelab.config import (
    DEFAULT_EPOCHS,
    MIN_STEPS,
    TrainConfig,
    as_config,
    out_of_range,
    saved_settings,
    with_unrecorded,
)
from tunelab.errors import ConfigError, TunelabError, and_list, setting, setting_as, setting_change
from tunelab.io import (
    LOCK_NAME,
    atomic_write_text,
    check_folder,
    folder_lock,
    folder_part,
    make_folder,
    remove_leftovers,
    remove_tree,
    resumed_default,
)
from tunelab.metrics import canonical_metric, higher_is_better, primary_metric
from tunelab.run.record import RunRecord, read_json, write_json
from tunelab.run.worker import RECORD_NAME
from tunelab.units import format_mb

LR_FACTORS = (0.3, 1.0, 3.0)
RUNS_DIR = "runs"
LR_SEARCH_DIR = "lr-search"
PLAN_NAME = "compare.json"
PRE_NAME = "pre_recommendation.json"

#: Config fields that do not change what a run computes: a finished run is reused when all others match.
#: ``micro_batch_tokens`` cuts each batch into micro-batches whose gradients add up to the batch's own (as the
#: padding split always has: tunelab.run.padding), so a run is the same run whatever its cap was. ``report_to`` says
#: where a run's logs go, not what it computes: a resume that adds or drops ``--report-to mlflow`` retrained every run.
@dataclass
class PlannedRun:
    """One run of a comparison: a strategy at one seed and one data fraction."""

    run_id: str
    strategy: str
    seed: int
    data_fraction: float
    config: TrainConfig

    @property
    def folder(self) -> Path:
        return Path(self.config.out)


@dataclass
class CompareResult:
    """What :func:`compare` measured and wrote."""

    out: Path
    results: list[RunRecord]
    """The run records, in plan order (failed runs included)."""
    recommendation: dict[str, Any]
    """:func:`tunelab.advice.choose.recommend_from_results` on :func:`verdict_runs` of ``results``."""
    report: dict[str, Path]
    """Paths written by :func:`tunelab.report.write_report` (``html``, ``md``, ``csv``, ``plots``)."""
    pre_recommendation: dict[str, Any] | None = None
    lr_search: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    """Run ids whose finished record was reused (``resume=True``) instead of training again."""
    crossover: list[dict[str, Any]] = field(default_factory=list)
    """:func:`tunelab.advice.choose.crossover_from_fractions` rows (one per data fraction)."""
    planning: dict[str, Any] | None = None
    """A planned comparison's rounds and stops (:meth:`tunelab.compare.planner.Planner.summary`); None when exhaustive."""

    def __repr__(self) -> str:  # the dataclass's repr printed every record in full: pages in a notebook
        failed = f", {len(self.failed)} failed" if self.failed else ""
        reused = f", {len(self.reused)} reused" if self.reused else ""
        return (f"CompareResult(out={str(self.out)!r}, recommended={self.recommendation.get('strategy')!r}, "
                f"metric={self.recommendation.get('metric')!r}, runs={len(self.results)}{failed}{reused})")

    def to_dict(self) -> dict[str, Any]:
        """The comparison in JSON form, what ``tunelab compare --json`` prints: its folder, the recommendation, every
        run's record (as its ``metrics.json`` holds it) and the report's files, paths as strings (``json.dumps`` of
        the result itself failed: a dataclass of Paths and records)."""
        import json

        payload = {"out": str(self.out), "recommendation": self.recommendation,
                   "runs": [r.to_dict() for r in self.results], "report": self.report}
        return json.loads(json.dumps(payload, default=str))

    @property
    def failed(self) -> list[RunRecord]:
        """The runs that failed (not those that the time budget left unstarted or interrupted, :attr:`budget_stopped`,
        nor those an interrupt stopped, :attr:`interrupted`)."""
        return [r for r in self.results if not r.succeeded and not stopped_by_budget(r) and not interrupted(r)]

    @property
    def interrupted(self) -> list[RunRecord]:
        """The runs that an interrupt (Ctrl-C, SIGINT to a run) stopped before their end, a checkpoint saved."""
        return [r for r in self.results if interrupted(r) and not stopped_by_budget(r)]

    @property
    def budget_stopped(self) -> list[RunRecord]:
        """The runs that the comparison's time budget left unstarted or interrupted."""
        return [r for r in self.results if not r.succeeded and stopped_by_budget(r)]


# ----------------------------------------------------------------------------- planning


def parse_lr_overrides(text: str | None) -> dict[str, float]:
    """``"full=1e-5,lora=1e-3"`` → ``{"full": 1e-05, "lora": 0.001}``."""
    overrides: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            overrides[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--lr-overrides item '{item.strip()}' is not STRATEGY=LR: write e.g. full=1e-5,lora=1e-3") from None
    return overrides


def run_id(strategy: str, seed: int, fraction: float, *, many_seeds: bool, many_fractions: bool) -> str:
    """``lora``, or ``lora-f0.3-s43`` when the comparison repeats over fractions and seeds."""
    name = strategy
    if many_fractions:
        name += f"-f{fraction:g}"
    if many_seeds:
        name += f"-s{seed}"
    return name


def _problems(base: TrainConfig, strategies: Sequence[str], seeds: int, fractions: Sequence[float],
              lr_overrides: Mapping[str, float], lr_factors: Sequence[float], tune_lr_epochs: float | None) -> list[str]:
    from tunelab.strategies import STRATEGIES, as_loaded
    from tunelab.strategies.base import did_you_mean

    problems = [p for p in base.replace(strategy=as_loaded()).problems() if not p.startswith(setting("strategy"))]
    if not strategies:
        problems.append(f"{setting('strategies')} is empty: name at least one, e.g. head,lora,full")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        hints = did_you_mean(unknown[0]) if len(unknown) == 1 else ""
        problems.append(f"{setting('strategies')}: unknown {', '.join(unknown)}{hints}; use any of {', '.join(STRATEGIES)}")
    repeated = sorted({s for s in strategies if list(strategies).count(s) > 1})
    if repeated:
        problems.append(f"{setting('strategies')} names {', '.join(repeated)} more than once: list each once")
    if seeds < 1:
        problems.append(out_of_range(setting("seeds"), "at least 1", seeds, "3", "one seed"))
    if not fractions:
        problems.append(f"{setting('data_fractions')} is empty: give e.g. 0.1,0.3,1.0")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        problems.append(f"{setting('data_fractions')} must each be in (0, 1], got {', '.join(f'{f:g}' for f in bad)}: pass e.g. "
                        "0.1,0.3,1, or leave it out for the whole training split")
    if len(set(fractions)) != len(fractions):
        problems.append(f"{setting('data_fractions')} lists a fraction more than once: list each once")
    for name, lr in lr_overrides.items():
        if name not in strategies:
            problems.append(f"{setting('lr_overrides')} names {name}, which is not in {setting('strategies')} ({', '.join(strategies)})")
        if not (math.isfinite(lr) and lr > 0):
            problems.append(f"{setting('lr_overrides')} {name}={lr:g}: a learning rate must be positive and finite")
    if any(not (math.isfinite(f) and f > 0) for f in lr_factors) or not lr_factors:
        problems.append("learning-rate search factors must be positive numbers, e.g. 0.3,1,3")
    if tune_lr_epochs is not None and not 0 < tune_lr_epochs < math.inf:
        problems.append(out_of_range(setting("tune_lr_epochs"), "positive and finite", tune_lr_epochs, "0.5", "1 epoch"))
    return problems


def plan_runs(base: TrainConfig, strategies: Sequence[str], out: Path, *, seeds: int = 1,
              data_fractions: Sequence[float] = (1.0,), lrs: Mapping[str, float] | None = None,
              many_fractions: bool | None = None, many_seeds: bool | None = None) -> list[PlannedRun]:
    """Every run of the comparison: fractions ascending, then strategies in the given order, then seeds.

    ``lrs`` sets a strategy's learning rate (an override or the search's choice); the others keep
    their strategy's default (``lr=None``). ``many_fractions`` says whether run ids name the fraction
    (default: when there are several; a planned comparison's early rounds always do); ``many_seeds`` whether they
    name the seed (default: when there are several; a planned comparison's first seed at the full data does when the
    comparison has several).
    """
    lrs = lrs or {}
    fractions = sorted(data_fractions)
    if many_fractions is None:
        many_fractions = len(fractions) > 1
    if many_seeds is None:
        many_seeds = seeds > 1
    runs = []
    for fraction in fractions:
        for strategy in strategies:
            for i in range(seeds):
                seed = base.seed + i
                rid = run_id(strategy, seed, fraction, many_seeds=many_seeds, many_fractions=many_fractions)
                config = base.replace(
                    strategy=strategy,
                    seed=seed,
                    data_fraction=fraction,
                    lr=lrs.get(strategy),
                    out=str(out / RUNS_DIR / rid),
                    resume=False,
                    overwrite=True,
                )
                runs.append(PlannedRun(rid, strategy, seed, fraction, config))
    return runs


# ----------------------------------------------------------------------------- running one run


def _same_config(planned: TrainConfig, recorded: Mapping[str, Any] | None, num_blocks: int | None = None) -> bool:
    return isinstance(recorded, Mapping) and not planned.changed_from_run(with_unrecorded(recorded), num_blocks)


def finished_record(folder: Path, config: TrainConfig, split_fingerprint: str | None = None) -> RunRecord | None:
    """The run's record if it finished successfully with this configuration (and, given ``split_fingerprint``, on
    this data: a file edited at the same path is other data), else None."""
    path = folder / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = RunRecord.read(path)
    except (OSError, ValueError):
        return None
    if (not record.succeeded or not _same_config(config, record.config, record.meta_info.num_blocks)
            or not _same_defaults(config, record)):
        return None
    recorded = record.meta_info.split_fingerprint
    if split_fingerprint and recorded and recorded != split_fingerprint:
        logging.getLogger("tunelab").warning(f"{folder} holds a run on other data (the same --data, other rows): "
                                             "trained again")
        return None
    return record


def _adopt_renamed(planned: Sequence[PlannedRun]) -> None:
    """On resume, a planned run whose folder does not exist takes over the folder of the same run under the other
    name :func:`run_id` gives it (``head`` ran with one seed, ``head-s42`` with ``--seeds 2``; ``-f1`` with and
    without ``--data-fractions``) when no planned run has that name and it was run with this run's settings: the
    resumed comparison reuses it or goes on from its checkpoint instead of training it again beside a folder it no
    longer lists."""
    names = {run.run_id for run in planned}
    for run in planned:
        if run.folder.exists():
            continue
        for many_seeds, many_fractions in itertools.product((False, True), repeat=2):
            alias = run.folder.with_name(run_id(run.strategy, run.seed, run.data_fraction, many_seeds=many_seeds,
                                                many_fractions=many_fractions))
            if alias.name in names or not alias.is_dir():
                continue
            record = _safe_read(alias / RECORD_NAME) if (alias / RECORD_NAME).is_file() else {}
            recorded = _recorded_settings(alias, record)
            if isinstance(recorded, Mapping) and not run.config.changed_from_run(recorded, _num_blocks(record)):
                _rename_run(alias, run.folder, recorded.get("out"))
                logging.getLogger("tunelab").info(f"--resume: {alias.name} is the same run as {run.run_id} (named for "
                                                  f"this comparison's seeds and fractions): renamed, and reused")
                break


def _recorded_settings(folder: Path, record: Mapping[str, Any] | None = None) -> Any:
    """The settings a run in ``folder`` ran with: its record's ``config`` (``record``: that record, read already), else
    its ``run_config.yaml`` (a run interrupted before it wrote a record)."""
    path = folder / RECORD_NAME
    if path.is_file():
        config = (record if record is not None else _safe_read(path)).get("config")
        return with_unrecorded(config) if isinstance(config, Mapping) else config
    return saved_settings(folder / "run_config.yaml")


def _num_blocks(record: Mapping[str, Any]) -> int | None:
    """The blocks of the model a run (its record, read as JSON) trained: what its strategy resolved its options from."""
    meta = record.get("meta_info")
    return meta.get("num_blocks") if isinstance(meta, Mapping) else None


def _rename_run(old: Path, new: Path, recorded_out: Any) -> None:
    """Move a run's folder to ``new`` and point what it wrote at its old place (its record's run id and paths, its
    ``run_config.yaml``, its model card) at the new one."""
    import re

    places = {str(old), str(old.resolve())} | ({recorded_out} if isinstance(recorded_out, str) and recorded_out else set())
    pattern = re.compile("(?:" + "|".join(re.escape(p) for p in sorted(places, key=len, reverse=True)) + r")(?=[/\\\"'\s]|$)",
                         re.MULTILINE)
    def moved(value: Any) -> Any:  # in the record's parsed strings: a path in JSON has its backslashes escaped
        if isinstance(value, str):
            return pattern.sub(lambda _: str(new), value)
        if isinstance(value, Mapping):
            return {k: moved(v) for k, v in value.items()}
        return [moved(v) for v in value] if isinstance(value, list) else value

    old.rename(new)
    if (new / RECORD_NAME).is_file():
        values = moved(read_json(new / RECORD_NAME))
        values.setdefault("run_info", {})["run_id"] = new.name
        write_json(new / RECORD_NAME, values)
    for path in (new / "run_config.yaml", new / "model" / "README.md"):
        if path.is_file():  # atomically: cut short by a kill, the settings of a run without a record were lost
            atomic_write_text(path, pattern.sub(lambda _: str(new), path.read_text(encoding="utf-8")))


def _same_defaults(config: TrainConfig, record: RunRecord) -> bool:
    """Whether a run that took a default learning rate (``lr`` or ``head_lr`` left ``None``) took today's: a record
    from before a default changed is not reused as if it had."""
    from tunelab.strategies import STRATEGIES

    if config.strategy not in STRATEGIES:
        return True
    strategy = STRATEGIES[config.strategy]()
    info = record.train_info
    pairs = [(config.lr, info.learning_rate, strategy.default_lr),
             (config.head_lr, info.head_learning_rate, strategy.head_lr(config))]
    return all(asked is not None or trained is None or math.isclose(trained, today, rel_tol=1e-6)
               for asked, trained, today in pairs)


# ----------------------------------------------------------------------------- learning-rate search


def _default_lr(strategy: str) -> float:
    from tunelab.strategies import STRATEGIES

    return float(STRATEGIES[strategy].default_lr)


def search_lr(base: TrainConfig, strategy: str, out: Path, *, factors: Sequence[float] = LR_FACTORS,
              epochs: float | None = None, center: float | None = None, resume: bool = False,
              isolate: bool = True, log: Callable[[str], None] | None = None,
              metric: str | None = None) -> dict[str, Any]:
    """Short runs at ``center`` (default: the strategy's default lr) × each factor; the best
    validation ``metric`` (default: the task's) wins. Returns ``{"strategy", "metric", "epochs", "candidates", "chosen_lr", "default_lr"}``;
    ``chosen_lr`` falls back to ``center`` when every candidate failed.
    """
    from tunelab.advice.verdict import run_value

    center = center if center is not None else _default_lr(strategy)
    short = epochs if epochs is not None else min(1.0, base.epochs if base.epochs is not None else DEFAULT_EPOCHS)
    candidates = []
    for factor in factors:
        lr = float(f"{center * factor:.3g}")
        folder = out / LR_SEARCH_DIR / f"{strategy}-lr{lr:g}"
        config = base.replace(strategy=strategy, lr=lr, epochs=short, out=str(folder), resume=False, overwrite=True, merge=False)
        record = finished_record(folder, config) if resume else None
        if record is None:
            if log:
                log(f"  lr search {strategy}: lr {lr:g} for {short:g} epoch(s) ...")
            record = execute({"config": config.to_dict(), "split_seed": base.seed}, folder, isolate=isolate)
            shutil.rmtree(folder / "model", ignore_errors=True)  # only the validation metric is needed
        metric = metric or primary_metric(record.meta_info.task or base.task or "classification")
        value = run_value(record, "validation", metric)
        ok = record.succeeded and value is not None and math.isfinite(value)
        candidates.append({
            "lr": lr, "factor": factor, "status": "success" if ok else "failed", "metric": metric,
            "validation": value if ok else None, "error": None if ok else record.run_info.error,
            "train_time_s": record.train_info.train_time_s,
        })
    good = [c for c in candidates if c["status"] == "success"]
    metric = candidates[0]["metric"]
    if good:
        sign = -1.0 if higher_is_better(metric) else 1.0
        best = min(good, key=lambda c: (sign * c["validation"], abs(math.log(c["factor"]))))
        chosen = best["lr"]
    else:
        chosen = center
    result = {"strategy": strategy, "metric": metric, "epochs": short, "default_lr": _default_lr(strategy),
              "center_lr": center, "candidates": candidates, "chosen_lr": chosen, "all_failed": not good}
    if log:
        tried = ", ".join(f"{c['lr']:g}: {c['validation']:.4g}" if c["validation"] is not None else f"{c['lr']:g}: failed" for c in candidates)
        log(f"  lr search {strategy}: validation {metric} {tried} -> lr {chosen:g}" + (" (all failed; default kept)" if not good else ""))
    return result


# ----------------------------------------------------------------------------- the comparison


def _pre_recommendation(base: TrainConfig, strategies: Sequence[str], budget_minutes: float | None,
                        memory_gb: float | None, log: Callable[[str], None] | None,
                        metric: str | None = None) -> dict | None:
    """Advice before training (:func:`tunelab.recommend.recommend`, in its cheap mode: few texts for the
    domain signals; each strategy's steps are timed only when the advice needs their cost before training,
    otherwise the comparison's own runs measure it), when that module is installed; never fatal.
    ``budget_minutes`` is ``recommend``'s: the estimated training time a strategy may take; ``metric``: the
    comparison's (the advice's probe and reasons in it)."""
    try:
        from tunelab.advice.recommend import recommend
    except ImportError:
        return None
    import inspect

    params = inspect.signature(recommend).parameters
    # the domain measured on recommend's own sample (64 texts each side, as the advice was calibrated): 32 gave other
    # distances than `tunelab recommend` on the same data (centroid 0.29 against 0.16)
    wanted = {"config": base, "strategies": list(strategies), "budget_minutes": budget_minutes,
              "memory_gb": memory_gb, "warmup_steps": 1, "timed_steps": 2, "measure_costs": False, "metric": metric}
    kwargs = {k: v for k, v in wanted.items() if k in params and v is not None}
    try:
        rec = recommend(base.model, base.data, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the pre-training advice is optional; the comparison goes on
        if log:
            log(f"(pre-training recommendation skipped: {' '.join(str(exc).split())})")
        return None
    return rec if isinstance(rec, dict) else None


def _shared_cache(base: TrainConfig, strategies: Sequence[str], log: Callable[[str], None] | None) -> None:
    """Build the frozen-prefix cache once, at the lowest split any chosen strategy keeps frozen, so
    that every run reads (or extends) it instead of computing the frozen layers again. Only when the
    a failure here costs time, never a run."""
    from tunelab.run.training import build_shared_cache

    if not base.cache:
        return
    splits = [s for s in (_frozen_split(base.replace(strategy=name)) for name in strategies) if s]
    if len(splits) < 2:
        return  # nothing to share
    try:
        build_shared_cache(base, min(splits))
    except Exception as exc:  # noqa: BLE001 - each run can still build its own cache
        if log:
            log(f"(shared frozen-layer cache not built: {' '.join(str(exc).split())}; each run computes its own)")


def _frozen_split(config: TrainConfig) -> int | None:
    """How many bottom blocks ``config.strategy`` keeps frozen on ``config.model`` (None: none)."""
    from types import SimpleNamespace

    from tunelab.models import model_num_blocks
    from tunelab.strategies import get_strategy

    num_blocks = model_num_blocks(config.model, trust_remote_code=config.trust_remote_code)
    if num_blocks is None:  # a model whose config we cannot read here simply shares nothing
        return None
    try:
        return get_strategy(config.strategy).frozen_prefix(None, SimpleNamespace(num_blocks=num_blocks), config)
    except Exception:  # noqa: BLE001 - nor one a strategy cannot split
        return None


def _describe(record: RunRecord, metric: str | None = None) -> str:
    """``validation <metric> 0.8123, trained in 9.1 s, peak 640 MiB``: the split and the metric the comparison
    chooses by (``metric``, default the task's), so that no one picks from the progress lines by test."""
    if not record.succeeded:
        return str(record.run_info.error) if stopped_by_budget(record) else f"FAILED: {record.run_info.error}"
    from tunelab.advice.verdict import restated, run_value

    metric = metric or primary_metric(record.meta_info.task or "classification")
    value = run_value(record, "validation", metric)
    ti = record.train_info
    parts = [f"validation {metric} {value:.4f}" if value is not None else "no validation metric"]
    parts.extend(f"{r.recorded:.4f} in its metrics.json, recomputed from its saved outputs with today's definition"
                 for r in restated(record, metric, ("validation",)))
    if ti.train_time_s is not None:
        parts.append(f"trained in {ti.train_time_s:.1f} s")
    if ti.peak_memory_mb is not None:
        parts.append(f"peak {format_mb(ti.peak_memory_mb)}")
    return ", ".join(parts)


@dataclass
class CompareOptions:
    """How :func:`compare` runs, besides the base config and the strategies (each a keyword of ``compare``).

    ``seeds`` repeats each run with seeds ``base.seed``, ``base.seed + 1``, ... on the same split.
    ``data_fractions`` repeats the comparison on nested subsets of the training split. ``lr_overrides``
    fixes a strategy's learning rate; ``tune_lr`` searches ``default × lr_factors`` for
    ``tune_lr_epochs`` (default: 1) on the validation split first (an override becomes the search's
    centre). ``resume`` reuses every run whose ``metrics.json`` says success with the same
    configuration and resumes the others from their last checkpoint; ``overwrite`` retrains
    everything. ``budget_minutes`` is the comparison's total wall time: the runs go in rounds
    (:mod:`tunelab.compare.planner`) that stop early the strategies that cannot catch up, and no run
    starts that would end after it (default: :func:`tunelab.compare.planner.default_budget_s` of the
    cost estimates; none without them). ``exhaustive`` trains every strategy × seed × fraction to the
    end instead (no budget); ``halving`` is the planned rounds' η (the best ``⌈n / η⌉`` strategies go on after
    each round: :func:`tunelab.compare.planner.halve`; 1 keeps every one that can still catch up); unset, a comparison
    is planned (within ``budget_minutes`` or the default budget) unless it has several ``data_fractions`` or resumes an
    exhaustive one (:func:`exhaustive_by_default`). ``max_train_minutes`` / ``memory_gb`` set aside, after the fact, strategies
    whose training took longer / more memory in the recommendation; ``metric`` (default: the task's), ``tolerance`` and ``alpha`` are how it compares
    them (:func:`tunelab.advice.choose.recommend_from_results`); ``pre_recommend`` asks ``tunelab recommend``
    first; ``isolate`` runs each run in a fresh process, stopped after ``run_timeout_s``; ``title`` heads the
    report. ``executor`` runs the training runs (:mod:`tunelab.compare.executors`; default: a
    :class:`LocalExecutor` with ``isolate``).
    """

    seeds: int = 1
    data_fractions: Sequence[float] = (1.0,)
    tune_lr: bool = False
    lr_factors: Sequence[float] = LR_FACTORS
    tune_lr_epochs: float | None = None
    lr_overrides: Mapping[str, float] = field(default_factory=dict)
    resume: bool = False
    overwrite: bool = False
    budget_minutes: float | None = None
    halving: float = HALVING
    exhaustive: bool | None = None
    max_train_minutes: float | None = None
    memory_gb: float | None = None
    metric: str | None = None
    tolerance: float | None = None
    alpha: float = 0.05
    max_forgetting: float | None = None
    pre_recommend: bool = True
    isolate: bool = True
    run_timeout_s: float | None = None
    title: str | None = None
    executor: Executor | None = None

    @property
    def reuse(self) -> bool:
        """Whether finished runs (and saved advice) are reused."""
        return self.resume and not self.overwrite


def compare(base: TrainConfig | Mapping[str, Any] | None = None, strategies: Sequence[str] | str | None = None, *,
            out: str | Path | None = None, data: Any = None, options: CompareOptions | None = None,
            log: Callable[[str], None] | None = print, **option_values: Any) -> CompareResult:
    """Train the strategies on the same split, record each run, recommend, write the report.

    By default in rounds within a time budget (:mod:`tunelab.compare.planner`: strategies that cannot catch up are
    stopped early); with ``exhaustive=True``, or several ``data_fractions``, every strategy × seed × fraction trains to
    the end (:func:`exhaustive_by_default`).
    ``base`` holds every shared option (model, data, epochs, batch size, max samples, ...); its
    ``strategy``, ``lr``, ``data_fraction`` and ``out`` are set per run. The rest are
    :class:`CompareOptions`, given as ``options=`` or as keywords (``seeds=2, tune_lr=True``).
    Without ``resume`` or ``overwrite``, a folder that already holds runs is refused.

    ``data``: data in memory instead of ``base.data``, as :func:`~tunelab.run.training.train` takes it (a pandas
    DataFrame, a list of dicts, a dict of columns or of splits, a datasets Dataset / DatasetDict), checked as a file is, then saved into the
    comparison's folder (``<out>/data``, :data:`DATA_DIR`) where every run, in its own process, reads it:
    ``base.data`` becomes that folder. ``resume=True`` with the same data goes on (the data is saved again; runs
    are reused when its split is the same), and so does ``tunelab compare --data OUT/data --out OUT --resume``.

    ``strategies``: a list of names, or one string of comma-separated names as ``--strategies`` takes it; ``None``
    trains the default comparison for the task (:func:`~tunelab.strategies.default_comparison`);
    a named strategy that does not apply to the task is refused before anything is written.

    Raises :class:`~tunelab.errors.ConfigError` for bad options; a run that fails is recorded, not raised.
    """
    from tunelab.run import ranks
    from tunelab.strategies import default_comparison, named_strategies

    if ranks.distributed():  # every process would run the whole comparison and write the same folder
        raise ConfigError(f"tunelab compare runs in one process, which starts every run itself (this is one of "
                          f"{ranks.world_size()} processes under {ranks.launcher() or 'a launcher'}): run it without "
                          "a launcher, as plain `tunelab compare`; --executor ray spreads its runs over a cluster, and `tunelab train` runs "
                          "one strategy over several processes")
    started = time.time()  # the budget counts from here: advice, cache and every run
    opts = compare_options(options, **option_values)
    base = as_config(base if base is not None else TrainConfig(), "compare(base)").replace()
    named = strategies is not None
    strategies = named_strategies(strategies) if named else default_comparison(base.task)
    problems = _problems(base, strategies, opts.seeds, opts.data_fractions, opts.lr_overrides, opts.lr_factors,
                         opts.tune_lr_epochs)
    problems += option_problems(base, opts)  # before the data is read: a bad option does not wait for it
    if opts.isolate and opts.executor is None:
        from tunelab.run.isolate import unimportable_problems

        problems += unimportable_problems(strategies, "the comparison", "compare")
    if problems:
        raise ConfigError(problems)
    if isinstance(data, str | os.PathLike):  # a file or a built-in name: read where it is, as base.data
        base.data, data = os.fspath(data), None
    # the data and the model are checked before anything is written, and the task and the split's size read once
    with _staged(data) as staged, _resume_hint(out, base, staged is not None, opts.resume):
        if staged is not None:  # in memory: checked where it is staged, then saved into the comparison's folder
            out = Path(out) if out is not None else default_compare_out(base.replace(data=DATA_DIR), opts.resume)
            sized = _checked_inputs(base.replace(data=str(staged)))
            base.data = str(out / DATA_DIR)
        else:
            sized = _checked_inputs(base)
        return _checked_and_run(base, strategies, named, out, opts, sized, staged, log, started)


@contextlib.contextmanager
def _resume_hint(out: str | Path | None, base: TrainConfig, in_memory: bool, resume: bool):
    """Ctrl-C in ``compare()`` from Python: where the finished runs are and the call that continues them (it was a
    bare ``KeyboardInterrupt``, said nowhere). The command (:mod:`tunelab.cli.compare`) says its own command line."""
    from tunelab.errors import as_flags
    from tunelab.run.resilience import RunInterrupted

    try:
        yield
    except KeyboardInterrupt as exc:
        if as_flags():
            raise
        folder = out if out is not None else default_compare_out(base.replace(data=DATA_DIR) if in_memory else base,
                                                                 resume)
        raise RunInterrupted(f"the comparison's finished runs are kept in {folder}; its report is written when it "
                             f"ends. Resume with the same call and {setting('resume', True)} (it reuses them and "
                             "continues the interrupted run)", None) from exc


#: The folder in a comparison's folder that holds the data given to :func:`compare` in memory.
DATA_DIR = "data"


@contextlib.contextmanager
def _staged(data: Any):
    """Data given to :func:`compare` in memory, saved (``save_to_disk``) into a temporary folder, yielded (None for
    no data)."""
    if data is None:
        yield None
        return
    import tempfile

    from tunelab.data.readers import IN_MEMORY_FORMS, in_memory_dataset
    from tunelab.errors import DataError

    dataset = in_memory_dataset(data)
    if not hasattr(dataset, "save_to_disk"):
        raise DataError(f"compare(data=...) takes {IN_MEMORY_FORMS}; got a {type(data).__name__}")
    from tunelab.run.progress import library_bars_off

    with tempfile.TemporaryDirectory(prefix="tunelab-data-") as folder:
        with library_bars_off():  # a hand-over to the runs' processes: its 'Saving the dataset' bars, one per split,
            dataset.save_to_disk(str(Path(folder) / DATA_DIR))  # showed even with log=None
        yield Path(folder) / DATA_DIR


def _checked_and_run(base: TrainConfig, strategies: list[str], named: bool, out: str | Path | None,
                     opts: CompareOptions, sized: Sized, staged: Path | None, log: Callable[[str], None] | None,
                     started: float) -> CompareResult:
    """:func:`compare` once its data is read: the rest of the checks, the folder (with the data in memory, saved
    there), the advice, the learning rates, the runs."""
    from tunelab.strategies import default_comparison

    strategies = _for_task(strategies, sized.task) if named else default_comparison(sized.task)
    _check_metric(opts, sized.task)
    _check_max_length(base, strategies, sized.task)
    say = log or (lambda _msg: None)
    out = Path(out) if out is not None else default_compare_out(base, opts.resume)
    ran_with = _safe_read(out / PLAN_NAME).get("base_config") if opts.resume else None
    base = _scored_alike(base, strategies, sized.task, say, ran_with)
    sized = dataclasses.replace(sized, derived=("epochs",) if base.epochs is None else ())
    opts.data_fractions = _distinct_sizes(opts.data_fractions, base, sized, say)
    base = _epochs_fixed(base, opts, say, sized)
    _say_resolution(sized, opts, say)
    out = _checked_out(base, strategies, out, opts, sized)
    with folder_lock(out, "tunelab compare"):  # one comparison writes a folder at a time
        remove_leftovers(out)  # what a comparison killed while it replaced its runs left
        if opts.overwrite and not opts.resume:  # "replacing what --out holds": runs no longer in the plan too
            remove_tree(out / RUNS_DIR)  # at once: a kill half-way left runs whose record --resume reused, model gone
        if staged is not None:  # the data given in memory, where the runs read it (an earlier attempt's replaced)
            remove_tree(out / DATA_DIR)
            shutil.move(str(staged), str(out / DATA_DIR))
        if opts.exhaustive is None:
            opts.exhaustive = exhaustive_by_default(opts, out)
        if opts.isolate and opts.executor is None:
            from tunelab.run.isolate import warm_up

            warm_up()  # the runs' processes fork from a warm server: its imports overlap the advice
        pre = _advice_before_training(base, strategies, out, opts, say, log)
        lrs, searches = _learning_rates(base, strategies, out, opts, say, log)
        tracked = _tracked_comparison(base, strategies, out, opts)
        try:
            return _compared(base, strategies, out, opts, pre, lrs, searches, say, log, tracked, started, sized)
        except BaseException as exc:
            if tracked is not None:  # not left running in MLflow: compare --resume continues the same parent run
                tracked.abort(interrupted=isinstance(exc, KeyboardInterrupt))
            raise


def _compared(base: TrainConfig, strategies: list[str], out: Path, opts: CompareOptions, pre: dict | None,
              lrs: dict[str, float], searches: dict[str, dict], say: Callable[[str], None],
              log: Callable[[str], None] | None, tracked, started: float, sized: Sized) -> CompareResult:
    """:func:`compare` once its inputs are checked, its folder locked and its advice and learning rates set: the runs
    (every one, or in rounds), the verdict, the report."""
    from tunelab.advice.choose import crossover_from_fractions
    from tunelab.report import write_report, write_results_csv

    planning: dict[str, Any] | None = None
    if opts.exhaustive:
        planned = plan_runs(base, strategies, out, seeds=opts.seeds, data_fractions=opts.data_fractions, lrs=lrs)
        _write_plan(out, base, strategies, [p.run_id for p in planned], lrs, searches, opts, sized)
        _shared_cache(base, strategies, log)
        results, reused = _run_all(planned, base, searches, opts, say, tracked, _estimated_seconds(pre), show=log is not None,
                                   split_fingerprint=sized.split_fingerprint)
    else:
        results, reused, planning = _run_planned(base, strategies, out, lrs, searches, opts, pre, say, log, tracked, started,
                                                    sized)
    finalists = verdict_runs(results, planning)
    write_results_csv(out / "results.csv", results)  # the measurements first: they stand whatever the verdict does
    recommendation = _verdict(finalists, opts, planning)
    if planning is not None:
        recommendation["planning"] = planning
        failed = {row["strategy"] for row in recommendation.get("ranking") or [] if row.get("mean") is None}
        recommendation["reasons"].extend(stopped_early_reasons(planning, already_told=failed))
        recommendation["reasons"].extend(learned_before_stopping(planning, recommendation))
    report = write_report(out, results, recommendation=recommendation, pre_recommendation=pre,
                          title=opts.title or f"tunelab comparison: {base.model} on {base.data}", task=sized.task)
    if tracked is not None:
        tracked.finish(recommendation, [Path(report[k]) for k in ("html", "md", "csv", "json", "plots") if report.get(k)])
    crossover = crossover_from_fractions(finalists, recommendation["metric"]) if len(opts.data_fractions) > 1 else []
    return CompareResult(out=out, results=results, recommendation=recommendation, report=report,
                         pre_recommendation=pre, lr_search=searches, reused=reused, crossover=crossover,
                         planning=planning)


def _scored_alike(base: TrainConfig, strategies: list[str], task: str, say: Callable[[str], None],
                  ran_with: Any = None) -> TrainConfig:
    """``base`` with every run's texts packed and scored alike. Where a compared strategy cannot keep a causal LM's
    packed texts apart (a soft prompt every text must see: ``document_mask`` is among its
    :meth:`~tunelab.config.TrainConfig.without_effect`), its texts read the texts packed before them, and the others'
    each read alone: a text read after others is easier to predict, so their perplexities would not compare (on 64
    maintenance notes a soft prompt's 55.8 across texts was chosen over LoRA's 121.4 alone, whose same run read 35.7
    across texts). Every run then packs without the per-text mask, as ``document_mask=False`` asks, said once.
    ``ran_with``: the settings of the comparison resumed; one that ran with the mask (started before runs were scored
    alike) continues as it ran, not refused as asked with other settings (the verdict's reasons say so of its runs)."""
    started_masked = isinstance(ran_with, Mapping) and ran_with.get("document_mask") is True
    if task != "causal-lm" or not base.document_mask or started_masked:
        return base
    across = [s for s in strategies if "document_mask" in base.replace(strategy=s).without_effect(task)]
    if not across or len(across) == len(strategies):
        return base
    say(f"every run lets packed texts attend to the texts before them in a block, as {setting('document_mask', False)} "
        f"asks: {', '.join(across)} cannot keep them apart, and perplexities scored per text and across texts do not "
        "compare (a text read after others is easier to predict)")
    return base.replace(document_mask=False)


def compare_options(options: CompareOptions | None = None, **values: Any) -> CompareOptions:
    """:func:`compare`'s options as it takes them (``options=`` and/or keywords), in the form it uses them: the
    learning-rate overrides a dict, the data fractions sorted, the metric in its canonical words."""
    opts = dataclasses.replace(options or CompareOptions(), **_known_options(values))
    opts.lr_overrides = dict(opts.lr_overrides or {})
    opts.data_fractions = sorted(float(f) for f in opts.data_fractions)
    if opts.metric is not None:  # macro-f1, F1 macro, f1-macro: the words of f1_macro
        opts.metric = canonical_metric(opts.metric)
    return opts


def check_options(base: TrainConfig, opts: CompareOptions) -> None:
    """Refuse, in one :class:`~tunelab.errors.ConfigError`, the :func:`option_problems` of ``opts``: what is checked
    before the data is read (the command calls it before it builds its executor or reads the data for a warning)."""
    problems = option_problems(base, opts)
    if problems:
        raise ConfigError(problems)


def option_problems(base: TrainConfig, opts: CompareOptions) -> list[str]:
    """What is wrong with ``opts`` that needs no data: ``resume`` with ``overwrite``, a level outside (0, 1), a negative tolerance, a budget or
    halving out of range, a budget with ``exhaustive``, limits that no run can meet (a time or memory limit of 0 or
    less), and a forgetting limit on runs that do not measure it (--no-forgetting: it let every strategy through,
    said nowhere). The metric, which needs the task, is :func:`_check_metric`'s."""
    from tunelab.advice.choose import level_problems

    problems = []
    if opts.resume and opts.overwrite:  # was refused by the command only: from Python, overwrite won without a word
        problems.append(f"{setting('resume', True)} reuses the finished runs in {setting('out')} and "
                        f"{setting('overwrite', True)} trains every one again: give one of them")
    levels = level_problems(opts.alpha, opts.tolerance)
    problems.extend(levels)
    if opts.budget_minutes is not None and not (math.isfinite(opts.budget_minutes) and opts.budget_minutes > 0):
        problems.append(out_of_range(setting("budget_minutes"), "a positive number of minutes", opts.budget_minutes, "30",
                                     "a budget from the strategies' estimated times"))
    if not opts.halving >= 1:
        problems.append(out_of_range(setting("halving"), "at least 1 (1 keeps every strategy that can still catch up)",
                                     opts.halving, "2", f"its default, {HALVING:g}"))
    if opts.budget_minutes is not None and opts.exhaustive:
        problems.append(f"{setting('budget_minutes')} limits a planned comparison and {setting('exhaustive', True)} trains "
                        f"everything to the end: pick one ({setting('max_train_minutes')} sets aside slow strategies "
                        "after the fact)")
    if not any(p.startswith(setting("tolerance")) for p in levels) and opts.tolerance is not None and opts.tolerance >= 1:
        # every strategy would be "as good as the best"
        problems.append(f"{setting_as('tolerance', f'{opts.tolerance:g}')} is a fraction, not points: 0.01 is one point of accuracy or F1, "
                        "0.02 is 2 % of perplexity; give it below 1")
    limits = {setting("max_train_minutes"): (opts.max_train_minutes, "minutes of training", "30"),
              setting("memory_gb"): (opts.memory_gb, "GiB of peak memory", "16"),
              setting("run_timeout_s", flag="run_timeout"): (opts.run_timeout_s, "seconds a run may take", "3600")}
    for flag, (value, what, example) in limits.items():  # a limit of 0 or less sets every strategy aside, after training
        if value is not None and not (math.isfinite(value) and value > 0):
            problems.append(out_of_range(flag, f"a positive number of {what}", value, example, "no limit"))
    if opts.max_forgetting is not None and not (math.isfinite(opts.max_forgetting) and opts.max_forgetting >= 0):
        problems.append(out_of_range(setting("max_forgetting"), "a number >= 0 (0: no forgetting at all)", opts.max_forgetting,
                                     "0.05", "no limit"))
    elif opts.max_forgetting is not None and not base.forgetting:  # no run would measure it: the limit passed every one
        problems.append(f"{setting_as('max_forgetting', f'{opts.max_forgetting:g}')} limits what {setting('forgetting', False)} does "
                        "not measure: "
                        "leave one of them out")
    return [p for p in problems if p]


def _check_metric(opts: CompareOptions, task: str) -> None:
    """Refuse, before anything runs, a metric that does not apply to the comparison's ``task`` (read from the data:
    the one option checked after it; the others are :func:`option_problems`, checked before)."""
    from tunelab.metrics import metric_problem

    problem = opts.metric is not None and metric_problem(opts.metric, task)
    if problem:
        raise ConfigError(problem)


def exhaustive_by_default(opts: CompareOptions, out: Path) -> bool:
    """Whether a comparison that names no mode (neither ``exhaustive`` nor a budget) trains everything to the end.

    It runs in rounds within the default budget (:func:`tunelab.compare.planner.default_budget_s`), as issue 16 asks of
    the main job, except: with several ``data_fractions`` (the learning curves the user asked for, which rounds would
    cut short), and on ``resume`` of a comparison whose ``compare.json`` says how it ran (it goes on the same way, so
    that a folder made exhaustively is not screened again)."""
    if opts.budget_minutes is not None:
        return False
    recorded = _safe_read(out / PLAN_NAME).get("mode") if opts.reuse else None
    if recorded in ("exhaustive", "planned"):
        return recorded == "exhaustive"
    return len(opts.data_fractions) > 1


def default_compare_out(base: TrainConfig, resume: bool = False) -> Path:
    """Where a comparison writes when no ``out`` is given: ``runs/compare-MODEL-DATA``, each the last part of its path
    or hub id as one shell word (:func:`tunelab.io.folder_part`; data in memory: ``data``, the folder it is saved to);
    under ``resume``, a comparison started under the folder's former name continues there
    (:func:`tunelab.io.resumed_default`)."""
    def folder(hashed: bool) -> Path:
        return Path("runs") / "-".join(["compare", *(folder_part(Path(str(s)).name, hashed=hashed) or "data"
                                                     for s in (base.model, base.data))])

    return resumed_default(folder, resume)


def _known_options(values: dict[str, Any]) -> dict[str, Any]:
    """``compare``'s keywords when each is a :class:`CompareOptions` field; else one line naming the first that is not
    (a :class:`TrainConfig` setting goes in ``base``)."""
    import difflib

    fields = [f.name for f in dataclasses.fields(CompareOptions)]
    unknown = [name for name in values if name not in fields]
    if not unknown:
        return values
    name = unknown[0]
    if name in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise ConfigError(f"compare({name}=...): {name} is a setting of every run: give it in base, "
                          f"TrainConfig({name}=...)")
    close = difflib.get_close_matches(name, fields, n=1)
    raise ConfigError(f"compare({name}=...): no such option" + (f" (did you mean {close[0]}?)" if close else "")
                      + "; the options are CompareOptions' fields")


def _checked_out(base: TrainConfig, strategies: list[str], out: Path, opts: CompareOptions, sized: Sized) -> Path:
    """The comparison's folder ``out`` (resolved by the caller: the default, or its former name under ``resume``),
    created once every option, the data (``sized``) and the model have been checked."""
    check_folder(out)
    runs_dir = out / RUNS_DIR
    held = _comparison_files(out)
    if held is not None and not held and not opts.overwrite:
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
        if others:  # a comparison would write over a results.csv or report.md of the user's, mixed in with theirs
            more = f" and {len(others) - 1} more" if len(others) > 1 else ""
            raise TunelabError(f"{out} is not empty ({others[0]}{more}) and holds no comparison: choose another "
                               f"{setting('out')}, or pass {setting('overwrite', True)} to write the comparison there (its "
                               "files replace any of the same name)")
    if opts.resume and not held:
        logging.getLogger("tunelab").warning(f"{setting('resume', True)}: {out} holds no comparison to resume; starting one")
    plan = _safe_read(out / PLAN_NAME) if opts.resume else {}
    saved = plan.get("base_config")
    changed = [c for c in base.changed_from(saved) if c[0] in saved] if isinstance(saved, Mapping) else []
    ran_on = plan.get("data") if isinstance(plan.get("data"), Mapping) else {}
    if ran_on.get("split_fingerprint") and ran_on["split_fingerprint"] != sized.split_fingerprint:
        # the data changed (its runs train again on it, as for an edited file): what follows from its size, not
        # given by the user then nor now (the epochs), changes with it and is no change of settings
        followed = set(ran_on.get("derived") or ()) & set(sized.derived)
        if followed and any(name in followed for name, _, _ in changed):
            then = ran_on.get("n_train")
            logging.getLogger("tunelab").warning(
                f"--resume: {base.data} has changed since the comparison in {out} ran"
                f"{f' ({then:,} training examples then, {sized.n_split:,} now)' if isinstance(then, int) else ''}: "
                f"{_changes([c for c in changed if c[0] in followed])} with it, and its runs train again")
            changed = [c for c in changed if c[0] not in followed]
    if changed:
        raise ConfigError(f"{setting('resume', True)} would continue the comparison in {out} with other settings than it "
                          f"ran with ({_changes(changed)}): resume it with the settings it ran with, or start again with "
                          f"{setting('overwrite', True)} or another {setting('out')}")
    if runs_dir.is_dir() and any(runs_dir.iterdir()) and not (opts.resume or opts.overwrite):
        raise TunelabError(
            f"{out} already holds a comparison: pass {setting('resume', True)} to reuse its finished runs, "
            f"{setting('overwrite', True)} to run everything again, or choose another {setting('out')}"
        )
    if runs_dir.is_dir() and opts.overwrite and not opts.resume:
        from tunelab.run.artifacts import REPLACED, foreign_files
        from tunelab.run.progress import PROGRESS_NAME

        marks = (*REPLACED, PROGRESS_NAME, LOCK_NAME)  # a run's folder holds one of them from its start
        foreign = [p for p in sorted(runs_dir.iterdir()) if p.is_file() or (any(p.iterdir()) and not any((p / m).exists() for m in marks))]
        foreign += [f for p in sorted(runs_dir.iterdir()) if p.is_dir() for f in foreign_files(p)]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise TunelabError(f"{setting('overwrite', True)} would delete {foreign[0]}{more}, which no tunelab run wrote: "
                               f"move {'them' if more else 'it'} out of {runs_dir}, or choose another {setting('out')}")
    return make_folder(out)


def _comparison_files(out: Path) -> list[str] | None:
    """What in ``out`` shows a comparison (its plan, advice, learning-rate search or runs); None when ``out`` is no
    folder yet."""
    from tunelab.compare.tracking import STATE_NAME

    if not out.is_dir():
        return None
    marks = [PLAN_NAME, PRE_NAME, LR_SEARCH_DIR, RUNS_DIR, STATE_NAME]
    return [m for m in marks if (out / m).is_file() or ((out / m).is_dir() and any((out / m).iterdir()))]


def _advice_before_training(base: TrainConfig, strategies: list[str], out: Path, opts: CompareOptions,
                            say: Callable[[str], None], log: Callable[[str], None] | None) -> dict | None:
    """``tunelab recommend``'s advice before training (saved; reused on resume when asked the same: the same settings,
    of ``extra`` only the keys a compared strategy or tunelab reads, :meth:`~tunelab.config.TrainConfig.extra_in_effect`)."""
    if not opts.pre_recommend:
        return None
    pre_path = out / PRE_NAME
    config = base.to_dict()
    config["extra"] = {k: v for s in strategies for k, v in base.replace(strategy=s).extra_in_effect().items()}
    asked = {"base_config": config, "strategies": strategies, "max_train_minutes": opts.max_train_minutes,
             "memory_gb": opts.memory_gb}
    saved = _safe_read(pre_path) if opts.reuse else {}
    if saved.get("asked") == asked and isinstance(saved.get("recommendation"), dict):
        pre = saved["recommendation"]
    else:
        say("measuring the data, the domain and, where the advice needs it, each strategy's cost before training "
            "(tunelab recommend) ...")
        pre = _pre_recommendation(base, strategies, opts.max_train_minutes, opts.memory_gb, log, opts.metric)
        if pre is not None:
            write_json(pre_path, {"asked": asked, "recommendation": pre})
    if pre and pre.get("strategy"):
        say(f"before training, tunelab would pick: {pre['strategy']}")
    return pre


def _learning_rates(base: TrainConfig, strategies: list[str], out: Path, opts: CompareOptions,
                    say: Callable[[str], None], log: Callable[[str], None] | None) -> tuple[dict[str, float], dict[str, dict]]:
    """Each strategy's learning rate (override or search result; absent: its default) and the searches."""
    lrs: dict[str, float] = dict(opts.lr_overrides)
    searches: dict[str, dict[str, Any]] = {}
    if not opts.tune_lr:
        return lrs, searches
    say(f"learning-rate search: {', '.join(f'×{f:g}' for f in opts.lr_factors)} around each strategy's default, on the validation split")
    search_base = base.replace(data_fraction=opts.data_fractions[-1])
    for strategy in strategies:
        searches[strategy] = search_lr(search_base, strategy, out, factors=opts.lr_factors, epochs=opts.tune_lr_epochs,
                                       center=opts.lr_overrides.get(strategy), resume=opts.reuse, isolate=opts.isolate, log=log,
                                       metric=opts.metric)
        lrs[strategy] = searches[strategy]["chosen_lr"]
    return lrs, searches


def _write_plan(out: Path, base: TrainConfig, strategies: list[str], run_ids: list[str], lrs: dict[str, float],
                searches: dict[str, dict], opts: CompareOptions, sized: Sized,
                planning: dict[str, Any] | None = None) -> None:
    write_json(out / PLAN_NAME, {
        "mode": "exhaustive" if opts.exhaustive else "planned",
        "strategies": strategies, "seeds": [base.seed + i for i in range(opts.seeds)], "data_fractions": opts.data_fractions,
        "split_seed": base.seed, "lr_overrides": opts.lr_overrides, "tune_lr": opts.tune_lr, "lr_search": searches,
        "learning_rates": {s: lrs.get(s, _default_lr(s)) for s in strategies},
        "budget_minutes": opts.budget_minutes, "halving": opts.halving, "max_train_minutes": opts.max_train_minutes, "memory_gb": opts.memory_gb,
        "isolate": opts.isolate, "runs": run_ids, "base_config": base.to_dict(),
        "data": {"split_fingerprint": sized.split_fingerprint, "n_train": sized.n_split, "derived": list(sized.derived)},
        **({"planning": planning} if planning is not None else {}),
    })  # fmt: skip


def _estimated_seconds(pre: dict | None) -> dict[str, float]:
    """Each strategy's estimated run time from the advice before training (the progress ETA, the budget, the planner's
    prediction before a strategy has run). A time that is not above zero is no estimate: a resumed comparison reads the
    advice its first start saved, and one saved before the estimate kept its probes' line from falling held -5,792 s."""
    out = {}
    for row in (pre or {}).get("estimates") or []:
        if isinstance(row.get("train_time_s"), int | float) and row["train_time_s"] > 0:
            out[row["strategy"]] = float(row["train_time_s"]) + float(row.get("cache_build_s") or 0.0)
    return out


def _tracked_comparison(base: TrainConfig, strategies: list[str], out: Path, opts: CompareOptions):
    """With ``--report-to mlflow``: the comparison's MLflow parent run (each run becomes its child)."""
    from tunelab.trackers import parse_report_to

    if "mlflow" not in parse_report_to(base.report_to):
        return None
    from tunelab.compare.tracking import ComparisonRuns

    params = {"model": base.model, "data": base.data, "strategies": ",".join(strategies), "seeds": opts.seeds,
              "data_fractions": ",".join(f"{f:g}" for f in opts.data_fractions), "epochs": base.epochs}
    return ComparisonRuns(opts.title or out.name, params, out, resume=opts.reuse)


def _run_all(planned: list[PlannedRun], base: TrainConfig, searches: dict[str, dict], opts: CompareOptions,
             say: Callable[[str], None], tracked=None, estimates: dict[str, float] | None = None,
             show: bool = False, limits: Callable[[PlannedRun], dict[str, float | None]] | None = None,
             prefix: str = "", split_fingerprint: str | None = None) -> tuple[list[RunRecord], list[str]]:
    """Every planned run: reused when finished earlier (resume), else handed to the executor. Returns the
    records in plan order and the ids of the reused runs. ``limits(run)`` gives a job's ``deadline``,
    ``start_by`` and ``grace_s`` (:class:`~tunelab.compare.executors.Job`)."""
    records: dict[str, RunRecord] = {}
    reused: list[str] = []
    jobs: list[Job] = []
    heads: dict[str, str] = {}
    if opts.reuse:
        _adopt_renamed(planned)
    for i, run in enumerate(planned, 1):
        heads[run.run_id] = f"{prefix}[{i}/{len(planned)}] {run.run_id}"
        record = finished_record(run.folder, run.config, split_fingerprint) if opts.reuse else None
        if record is not None:
            reused.append(run.run_id)
            records[run.run_id] = record
            say(f"{heads[run.run_id]}: finished earlier, reused ({_describe(record, opts.metric)})")
            if tracked is not None:
                tracked.reused(run.run_id, record.to_dict())
        else:
            job = _job(run, base, searches, opts, split_fingerprint)
            for name, value in (limits(run) if limits else {}).items():
                setattr(job, name, value)
            jobs.append(job)
    executor = opts.executor or LocalExecutor(isolate=opts.isolate)
    display = CompareDisplay(jobs, lambda job: job.spec["config"]["strategy"], say, estimates,
                             scope=prefix.strip() or "comparison")  # in rounds, the ETA is the round's

    def started(job: Job) -> None:
        if tracked is not None:  # the run's Trainer (and tunelab's final numbers) log into its child run, made as it starts
            job.spec["env"] = tracked.child_environment(job.run_id)
        config = TrainConfig.from_dict(job.spec["config"], where="plan")
        lr_text = f"lr {config.lr:g}" if config.lr is not None else f"default lr {_default_lr(config.strategy):g}"
        verb = "resuming" if config.resume and (job.folder / "checkpoints").is_dir() else "training"
        display.say(f"{heads[job.run_id]}: {verb} {config.strategy} (seed {config.seed}, data fraction "
                    f"{config.data_fraction:g}, {lr_text}) ...")
        display.start(job)

    def finished(job: Job, record: RunRecord) -> None:
        if tracked is not None:
            tracked.finish_child(job.run_id, record.to_dict())
        display.done(job, record.run_info.wall_time_s)
        done = _describe(record, opts.metric)
        lead = f"{heads[job.run_id]}:" if executor.concurrent else " " * len(heads[job.run_id]) + " "
        display.say(f"{lead} {done if not record.succeeded else 'done: ' + done}")

    with display:
        ran = executor.run(jobs, on_start=started, on_done=finished, on_progress=display.progress if show else None)
    for job, record in zip(jobs, ran):
        records[job.run_id] = record
    return [records[run.run_id] for run in planned], reused


# ----------------------------------------------------------------------------- planned mode


def _verdict(runs: list[RunRecord], opts: CompareOptions, planning: dict[str, Any] | None = None) -> dict[str, Any]:
    """The comparison's verdict on ``runs`` (:func:`tunelab.advice.choose.recommend_from_results` with its metric,
    tolerance, level and limits): at the end on the finalists (``planning``: a planned comparison's summary), and in a
    planned comparison on the full data's first seed, whose cut keeps the verdict's pick first."""
    from tunelab.advice.choose import recommend_from_results

    return recommend_from_results(runs, max_train_minutes=opts.max_train_minutes, memory_gb=opts.memory_gb,
                                  metric=opts.metric, tolerance=opts.tolerance, alpha=opts.alpha,
                                  max_forgetting=opts.max_forgetting,
                                  stopped=[s["strategy"] for s in (planning or {}).get("stopped") or []
                                           if s["status"] == "stopped_early"],
                                  rounds=planning is not None)


def _verdict_margin(ranking: list[dict], pick: str | None, best: str | None) -> tuple[str, float] | None:
    """The verdict's best and the half-width of the paired interval of ``pick`` against it (None where it has none:
    the pick is the best, or the comparison gave no interval)."""
    if pick is None or best is None:
        return None
    if pick == best:
        return best, 0.0
    versus = next((v.get("versus_best") or {} for v in ranking if v["strategy"] == pick), {})
    low, high = versus.get("gap_low"), versus.get("gap_high")
    return None if low is None or high is None else (best, (high - low) / 2.0)


def _run_planned(base: TrainConfig, strategies: list[str], out: Path, lrs: dict[str, float], searches: dict[str, dict],
                 opts: CompareOptions, pre: dict | None, say: Callable[[str], None], log: Callable[[str], None] | None,
                 tracked, started: float, sized: Sized) -> tuple[list[RunRecord], list[str], dict[str, Any]]:
    """The comparison in rounds (:mod:`tunelab.compare.planner`): each round's runs go to the executor;
    after each, the strategies that cannot catch up are stopped. Returns every run's record (rounds in
    order; runs never started left out), the reused ids and the plan's summary."""
    from tunelab.compare.planner import (
        MIN_ROUND_EXAMPLES,
        MIN_ROUND_STEPS,
        ROUND_FACTOR,
        Planner,
        measurements_from_results,
        round_fractions,
        rungs,
        timings_from_results,
    )

    task, n_split, per_example = sized.task, sized.n_split, sized.sequences_per_example
    metric = opts.metric or primary_metric(task)
    final = opts.data_fractions[-1]
    n_final = _examples_at(n_split, final, base.max_train_samples)
    usable = _examples_at(n_split, 1.0, base.max_train_samples)  # what fraction 1 holds
    rounds = (round_fractions(opts.data_fractions, usable, sequences_per_example=per_example, steps=_steps_of(base))
              if len(strategies) > 1 else [final])
    many = len(strategies) > 1 and len(rungs(rounds, opts.seeds)) > 1  # rounds before the last
    final_estimates = _estimated_seconds(pre)
    budget_s, budget_source = _budget(opts, final_estimates, strategies)
    # the planner scales times by each round's training examples (estimates: seconds per example), or by the
    # data fraction when the split's size is unknown (estimates: per fraction 1 of the split)
    sizes = {f: float(_examples_at(n_split, f, base.max_train_samples)) for f in rounds} if n_split and n_final else None
    estimates = {s: t / n_final if sizes else t / final for s, t in final_estimates.items()}
    after_first = budget_s is None and opts.budget_minutes is None and many
    if after_first:
        budget_source = ("default, set after round 1: max(5 min, 2 × seeds × each strategy's time on all the data, "
                         "predicted from its round-1 run)")
    planner = Planner(strategies, rounds, metric, budget_s=budget_s, seeds=opts.seeds, level=1.0 - opts.alpha,
                      estimates=estimates, target=float(n_final) if n_final else None, sizes=sizes, eta=opts.halving,
                      budget_after_first_round=after_first)
    step_guess = max((float(r["time_per_step_s"]) for r in (pre or {}).get("estimates") or []
                      if isinstance(r.get("time_per_step_s"), int | float) and r["time_per_step_s"] > 0), default=None)
    held = (f"{n_final} training examples" if per_example == 1.0 else
            f"{n_final} training texts, about {n_final * per_example:,.0f} training sequences")
    third = round(n_final / ROUND_FACTOR * per_example) if n_final else 0  # the largest round before the last
    steps_of = _steps_of(base)
    why = (f"a round of a ninth or a third of them would hold fewer than {MIN_ROUND_EXAMPLES}"
           f"{' sequences' if per_example != 1.0 else ''}, the planner's minimum"
           if third < MIN_ROUND_EXAMPLES or steps_of is None else
           f"a round of a third of them would train {steps_of(third):.0f} optimizer steps, fewer than the planner's "
           f"minimum of {MIN_ROUND_STEPS}")

    def size(fractions: list[float]) -> str:  # " (46, 140 and 420 training examples)": what a fraction holds
        counts = [_examples_at(n_split, f, base.max_train_samples) for f in fractions]
        if not fractions or any(c is None for c in counts):
            return ""
        return f" ({and_list([f'{c:,}' for c in counts])} training {'examples' if per_example == 1.0 else 'texts'})"

    one_round = (f"planned comparison: one round, every strategy on data fraction {final:g}"
                 + (f" ({held}): {why}, so no strategy is screened on less data" if n_final else ""))
    say((one_round if not many and len(strategies) > 1 and len(opts.data_fractions) == 1 else
         f"planned comparison: rounds at data fractions {', '.join(f'{f:g}' for f in rounds)}{size(list(rounds))}")
        + (f" (at the full data, seed {base.seed} first, then the other seeds for those that remain)" if many and opts.seeds > 1 else "") + "; "
        + (f"budget {budget_s / 60:.1f} min ({budget_source})" if budget_s is not None else
           f"budget {budget_source}" if after_first else f"no time budget ({budget_source})")
        + "; --exhaustive trains every strategy to the end")
    results: list[RunRecord] = []
    reused: list[str] = []
    run_ids: list[str] = []
    made: dict[str, RunRecord] = {}  # this comparison's successful runs at the full data (the first seed's rung)
    told, told_rounds = 0, set()
    while (rnd := planner.next_round(time.time() - started)) is not None:
        told = _say_stops(planner, say, told, told_rounds)
        rounds_in_all = rnd.index if rnd.final else len(planner.rungs_)  # a lone strategy left skips to the last
        say(f"round {rnd.index}/{rounds_in_all}: {', '.join(rnd.strategies)} on data fraction {rnd.fraction:g}"
            + size([rnd.fraction])
            + (", the final round" if rnd.final else
               f", seed {base.seed} (the other seeds go to those that remain)" if not rnd.screening else ""))
        named_fraction = rnd.screening or len(opts.data_fractions) > 1
        # the rounds before the full data screen with one seed, on validation only; at the full data every run is
        # complete (test split, saved model), and a run the first seed's rung made is one of the finalists' seeds
        every = plan_runs(base.replace(screening=True) if rnd.screening else base, rnd.strategies, out,
                          seeds=rnd.seeds, many_seeds=not rnd.screening and opts.seeds > 1,
                          data_fractions=[rnd.fraction], lrs=lrs, many_fractions=named_fraction)
        planned = [p for p in every if p.run_id not in made]
        run_ids.extend(p.run_id for p in planned)
        _write_plan(out, base, strategies, run_ids, lrs, searches, opts, sized, planner.summary())
        if rnd.deadline_s is None or time.time() - started < rnd.deadline_s:  # no cache build once the budget is spent
            _shared_cache(base.replace(data_fraction=rnd.fraction, screening=rnd.screening), rnd.strategies, log)
        grace = planner.longest_step_s or step_guess

        def limits(run: PlannedRun, rnd=rnd, grace=grace) -> dict[str, float | None]:
            start_by = rnd.start_by.get(run.strategy)
            return {"deadline": None if rnd.deadline_s is None else started + rnd.deadline_s,
                    "start_by": None if start_by is None else started + start_by, "grace_s": grace}

        # the ETA: the planner's prediction of each run of this round, else the advice's of a whole run
        expected = {**_estimated_seconds(pre), **{s: t for s, t in rnd.seconds.items() if t is not None}}
        records, again = _run_all(planned, base, searches, opts, say, tracked, expected,
                                  show=log is not None, limits=limits, prefix=f"round {rnd.index} ",
                                  split_fingerprint=sized.split_fingerprint)
        reused.extend(again)
        ran = [r for r in records if r.run_info.status != SKIPPED]
        earlier = [made[p.run_id] for p in every if p.run_id in made]
        outcomes, errors = _round_outcomes(earlier + records, rnd.strategies)
        # every cut asks the verdict on its round's runs (the full data's first seed: the seeds left go first to the
        # strategy it picks; a round of less data: that one goes first where the rates measured keep it level)
        rung = (_verdict([r for r in earlier + ran if r.succeeded], opts)
                if planner.verdict_matters(rnd) else {})
        ranking = rung.get("ranking") or []
        best = next((v["strategy"] for v in ranking if (v.get("versus_best") or {}).get("reason") == "best"), None)
        shown_worse = {v["strategy"]: best for v in ranking if best and (v.get("versus_best") or {}).get("reason") == "worse"}
        planner.finish_round(rnd, measurements_from_results(earlier + ran, metric, rnd.fraction, level=1.0 - opts.alpha),
                             timings_from_results(ran), outcomes, errors, verdict=rung.get("strategy"),
                             shown_worse=shown_worse,
                             verdict_margin=_verdict_margin(ranking, rung.get("strategy"), best))
        results.extend(ran)
        if not rnd.screening:
            made.update({p.run_id: r for p, r in zip(planned, records) if r.succeeded})
        if after_first and rnd.index == 1 and planner.budget_s is not None:
            say(f"budget {planner.budget_s / 60:.1f} min, from round 1's measured times")
    _say_stops(planner, say, told, told_rounds)
    summary = planner.summary()
    summary["budget_source"] = budget_source
    summary["elapsed_s"] = round(time.time() - started, 1)  # this invocation's: a resumed one's reused runs ran before
    summary["reused_runs"] = len(reused)
    summary["runs"] = len(results)
    _mark_stopped_runs(results, summary)
    _write_plan(out, base, strategies, run_ids, lrs, searches, opts, sized, summary)
    return results, reused, summary


def _round_outcomes(records: list[RunRecord], strategies: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each strategy's outcome in a round (``ok``: a run succeeded; ``budget``: not started or interrupted
    for the budget; ``failed``) and, when not ok, the message of its first unsuccessful run."""
    outcomes, errors = {}, {}
    for strategy in strategies:
        own = [r for r in records if (r.run_info.strategy or r.config.get("strategy")) == strategy]
        if any(r.succeeded for r in own):
            outcomes[strategy] = "ok"
            continue
        budget = any(stopped_by_budget(r) for r in own)
        outcomes[strategy] = "budget" if budget else "failed"
        errors[strategy] = next((str(r.run_info.error) for r in own if r.run_info.error), "its run failed")
    return outcomes, errors


def _say_stops(planner, say: Callable[[str], None], told: int, told_rounds: set[int]) -> int:
    """Announce the stops after the first ``told``, and the strategies a round could not rank (once per round, noted
    in ``told_rounds``); returns how many stops have been told."""
    for index in planner.uninformative_:  # first: the stops that follow (the budget's) are not on the scores
        if ("quiet", index) not in told_rounds:
            told_rounds.add(("quiet", index))
            say(f"  {planner.quiet_message(index)}")
    for stop in planner.stops_[told:]:
        if stop.reason != "failed":
            say(f"  stopped early: {stop.strategy} ({stop.reason}): {stop.message}")
    for index, fresh in planner.unranked_.items():
        if index not in told_rounds:
            told_rounds.add(index)
            say(f"  not ranked after round {index}: {', '.join(fresh)} (not yet distinguishable from always predicting "
                "the most frequent class, so nothing bounds where they end: they go on)")
    return len(planner.stops_)


def _distinct_sizes(fractions: list[float], base: TrainConfig, sized: Sized, say: Callable[[str], None]) -> list[float]:
    """``--data-fractions`` (ascending) with one fraction per training-set size: fractions less than one example
    apart train on the same examples (nested subsets of one shuffle), so the largest of them is trained once and
    the others are said and dropped. Fractions whose runs train on fewer sequences than a planned round may hold
    (:data:`~tunelab.compare.planner.MIN_ROUND_EXAMPLES`) are said too: they train as asked, but measure little.
    One line each, before anything trains."""
    from tunelab.compare.planner import MIN_ROUND_EXAMPLES

    if len(fractions) < 2 or not sized.n_split:
        return fractions
    by_size: dict[int, list[float]] = {}
    for fraction in fractions:
        by_size.setdefault(_examples_at(sized.n_split, fraction, base.max_train_samples) or 0, []).append(fraction)
    same = {n: group for n, group in by_size.items() if len(group) > 1}
    if same:
        told = "; ".join(f"{' and '.join(f'{f:g}' for f in group)} train on the same {n:,} example{'s' * (n != 1)}"
                         f", trained once as {group[-1]:g}" for n, group in same.items())
        say(f"--data-fractions: {told} (fractions less than one example apart are one training-set size)")
    kept = [group[-1] for group in by_size.values()]
    small = {f: n for n, group in by_size.items() for f in group[-1:] if n * sized.sequences_per_example < MIN_ROUND_EXAMPLES}
    if small:
        listed = ", ".join(f"{f:g} {'trains ' * (i == 0)}on {n:,}{' example' * (i == 0)}{'s' * (i == 0 and n != 1)}"
                           for i, (f, n) in enumerate(small.items()))
        say(f"--data-fractions: {listed}, fewer than {MIN_ROUND_EXAMPLES}: such a run measures little beyond its "
            "starting point (and may miss classes); it is trained as asked, and its point sits on the learning curve "
            "with that noise")
    return sorted(kept)


def _epochs_fixed(base: TrainConfig, opts: CompareOptions, say: Callable[[str], None],
                  sized: Sized) -> TrainConfig:
    """``base`` with the epochs every run of the comparison takes: ``--epochs``, or the choice for the size of the
    largest run (:meth:`TrainConfig.epochs_for`). Runs on smaller fractions (learning curves, the planner's rounds)
    take the same epochs, so that they differ only in their data. ``sized``: :func:`_checked_inputs` of ``base``."""
    if base.epochs is not None:
        return base
    n = _examples_at(sized.n_split, opts.data_fractions[-1], base.max_train_samples)
    sequences = max(1, round(n * sized.sequences_per_example))  # what a step's batch holds: a causal LM's blocks
    epochs = base.epochs_for(sequences)
    if epochs != DEFAULT_EPOCHS:
        held = f"{n:,} training examples" if sequences == n else f"{n:,} training texts ({sequences:,} sequences)"
        say(f"epochs: {epochs:g}, so that {held} make at least {MIN_STEPS} optimizer steps "
            f"({DEFAULT_EPOCHS:g} epochs would make fewer; --epochs sets them)")
    return base.replace(epochs=epochs)


def _say_resolution(sized: Sized, opts: CompareOptions, say: Callable[[str], None]) -> None:
    """Before training, how fine a verdict the validation split can give on accuracy
    (:func:`~tunelab.advice.verdict.smallest_gap_shown`): a small split is the commonest reason a comparison
    cannot separate its strategies, and it is cheaper to learn that now than after every run."""
    from tunelab.advice.verdict import POWER, smallest_gap_shown

    if sized.task != "classification" or (opts.metric or primary_metric(sized.task)) != "accuracy" or not sized.n_validation:
        return
    gap = smallest_gap_shown(sized.n_validation, opts.alpha)
    say(f"validation split: {sized.n_validation:,} examples, the strategies are chosen on them: even two that differ "
        f"only where one is right need a gap of about {100 * gap:.1f} accuracy points to show it at the "
        f"{100 * opts.alpha:g} % level ({100 * POWER:.0f} % power), and most need more; for finer verdicts enlarge it "
        "(--validation-fraction, or a larger validation file)")


def _for_task(strategies: list[str], task: str) -> list[str]:
    """``strategies`` when each applies to ``task``; else one line naming those that do not."""
    from tunelab.strategies import STRATEGIES, default_comparison

    unfit = [s for s in strategies if task not in STRATEGIES[s].tasks]
    if unfit:
        kept = ",".join(s for s in strategies if s not in unfit) or ",".join(default_comparison(task))
        trains = "; ".join(f"{s} trains {' and '.join(STRATEGIES[s].tasks)} only" for s in unfit)
        raise ConfigError(f"{setting('strategies')}: {', '.join(unfit)} cannot train a {task} task ({trains}); drop "
                          f"{'it' if len(unfit) == 1 else 'them'}, e.g. {setting('strategies', kept)}")
    return strategies


@dataclass(frozen=True)
class Sized:
    """What the comparison reads from its data before any run: the task, the full training split's size and the
    training sequences each of its examples makes (:func:`tunelab.run.training.sequences_per_example`)."""

    task: str
    n_split: int
    sequences_per_example: float = 1.0
    n_validation: int = 0  # the examples each run is chosen on (after --max-eval-samples)
    split_fingerprint: str = ""  # the data as split (a finished run on other rows is not reused)
    derived: tuple[str, ...] = ()  # settings the comparison set from the data's size (the epochs, unless given)


def _checked_inputs(base: TrainConfig) -> Sized:
    """The comparison's :class:`Sized`, read from the data; a data source or a model that cannot serve the comparison
    stops it here, with one line, before anything is written or trained (:class:`DataError`, :class:`ModelError`),
    instead of failing every run the same way."""
    from tunelab.models.loading import check_model_for_task, check_tokenizer_fits, check_weights
    from tunelab.run.training import load_data, sequences_per_example

    data = load_data(base, whole=True)
    check_model_for_task(base.model, data.task, trust_remote_code=base.trust_remote_code)
    check_weights(base.model)
    check_tokenizer_fits(base.model, data, trust_remote_code=base.trust_remote_code)
    n_validation = min(len(data.validation), base.max_eval_samples or len(data.validation))
    return Sized(data.task, len(data.train), sequences_per_example(base, data), n_validation, data.split_fingerprint)


def _check_max_length(base: TrainConfig, strategies: list[str], task: str) -> None:
    """``--max-length`` against what the model takes with each strategy's added positions (a soft prompt's), before
    anything is written: one line, as ``train`` says it, instead of every run failing on it."""
    if base.max_length is None:
        return
    from tunelab.models.loading import load_model_config, load_tokenizer
    from tunelab.run.training import resolve_max_length

    model_config = load_model_config(base.model, trust_remote_code=base.trust_remote_code)
    tokenizer = load_tokenizer(base.model, trust_remote_code=base.trust_remote_code)
    for strategy in strategies:
        resolve_max_length(base.replace(strategy=strategy), task, model_config, tokenizer)


def _steps_of(base: TrainConfig) -> Callable[[int], float] | None:
    """The optimizer steps a run of ``base`` takes on so many training sequences (its epochs fixed by
    :func:`_epochs_fixed`), for the planner's minimum; None when the epochs are not fixed."""
    if base.epochs is None:
        return None
    return lambda sequences: base.steps_per_epoch(sequences) * float(base.epochs)


def _examples_at(n_split: int | None, fraction: float, max_samples: int | None) -> int | None:
    """Training examples of a run at ``fraction`` of a split of ``n_split`` cut to ``--max-train-samples``
    (:func:`tunelab.run.training.training_examples`)."""
    from tunelab.run.training import training_examples

    return None if n_split is None else training_examples(n_split, fraction, max_samples)


def _budget(opts: CompareOptions, estimates: dict[str, float], strategies: list[str]) -> tuple[float | None, str]:
    """The comparison's budget in seconds and where it comes from."""
    from tunelab.compare.planner import default_budget_s

    if opts.budget_minutes is not None:
        return 60.0 * opts.budget_minutes, "--budget-minutes"
    budget = default_budget_s(estimates, strategies, opts.seeds)
    if budget is None:
        why = "the cost estimates were skipped" if not opts.pre_recommend else "no cost estimate for every strategy"
        return None, f"{why}; pass --budget-minutes to set one"
    return budget, "default: max(5 min, 2 × seeds × the estimated time of every strategy on all the data)"


def verdict_runs(results: list[RunRecord], planning: dict[str, Any] | None) -> list[RunRecord]:
    """The runs the verdict stands on: every run of an exhaustive comparison (``planning`` None); of a planned one, all
    but the successful runs of a strategy stopped at the full data (after its first seed there,
    :func:`tunelab.compare.planner.rungs`). Such a strategy is not a finalist, like one stopped at a smaller fraction,
    whose runs the verdict at the full data never sees. Nor does it see the runs that the time budget left unstarted or
    interrupted, of a strategy the planner records as stopped for the budget: the reasons say so once, as a stop, not as
    a failure. The report shows these runs, marked stopped early."""
    from tunelab.advice.choose import largest_fraction, run_fraction, run_strategy

    if planning is None or not results:
        return results
    final = largest_fraction(results)  # the fraction the verdict reads (summarize_strategies)
    budget = set(strategies_budget_stopped(planning))
    return [r for r in results
            if not (r.succeeded and "stopped_early" in r.extra and math.isclose(run_fraction(r), final))
            and not (run_strategy(r) in budget and stopped_by_budget(r))]


def _mark_stopped_runs(results: list[RunRecord], summary: dict[str, Any]) -> None:
    """Write each stopped strategy's stop (round, fraction, reason, prediction) into its last runs' records
    (``stopped_early``), and clear a stale one left by an earlier decision (resume)."""
    stops = {s["strategy"]: s for s in summary["stopped"] if s["status"] == "stopped_early"}
    for record in results:
        strategy = record.run_info.strategy or record.config.get("strategy")
        stop = stops.get(strategy)
        mine = stop is not None and math.isclose(float(record.run_info.data_fraction or 1.0), float(stop["data_fraction"]))
        if mine == ("stopped_early" in record.extra) and (not mine or record.extra["stopped_early"] == stop):
            continue
        if mine:
            record.extra["stopped_early"] = stop
        else:
            record.extra.pop("stopped_early", None)
        folder = record.config.get("out")
        if folder and (Path(folder) / RECORD_NAME).is_file():
            record.write(Path(folder) / RECORD_NAME)


def learned_before_stopping(planning: dict[str, Any], recommendation: dict[str, Any]) -> list[str]:
    """When the finalists are not shown to beat the constant predictor (``recommendation["chance"]["learned"]`` is
    False), the strategies the rounds stopped whose own measurement was clear of its score (the pessimistic end of
    their prediction above it): the rounds, not the task, may be why nothing learned, and ``--exhaustive`` says."""
    from tunelab.advice.choose import format_metric
    from tunelab.advice.verdict import AS_LOADED_MODEL, clear_of_chance

    chance, metric = recommendation.get("chance") or {}, recommendation.get("metric")
    if chance.get("learned") is not False or chance.get("value") is None or not metric:
        return []
    stops = [stop for stop in planning.get("stopped") or [] if stop["status"] == "stopped_early"
             and (stop.get("prediction") or {}).get("pessimistic") is not None
             # the pessimistic end is the side of the interval that must be clear, whichever way the metric goes
             and clear_of_chance(stop["prediction"]["pessimistic"], stop["prediction"]["pessimistic"], chance["value"], metric)]
    if not stops:
        return []
    stops.sort(key=lambda stop: stop["prediction"]["pessimistic"], reverse=higher_is_better(metric))
    clear = [f"{stop['strategy']} (measured {format_metric(stop['prediction']['measured'], metric)}, at least "
             f"{format_metric(stop['prediction']['pessimistic'], metric)} by its interval, round {stop['round']})"
             for stop in stops]
    named = and_list(clear)
    return [f"Before the rounds stopped {'it' if len(clear) == 1 else 'them'}, {named} measured clear of "
            f"{format_metric(chance['value'], metric)}, the "
            f"{'model as loaded' if chance.get('reference') == AS_LOADED_MODEL else 'constant predictor'}'s score that the finalists did not "
            "beat: the cut, not the task, may be why nothing here learned. --exhaustive (or --halving 1) trains "
            "them to the end."]


def stopped_early_reasons(planning: dict[str, Any], *, already_told: set[str] = frozenset()) -> list[str]:
    """One line per strategy a planned comparison stopped before the final round (but those in
    ``already_told``: failed runs the recommendation names with their error), and one when none reached it (first
    when the budget stopped every strategy in round 1: then nothing is chosen, and it is the reason why)."""
    from tunelab.report.tables import where_stopped

    lines = []
    for stop in planning.get("stopped") or []:
        if stop["status"] != "stopped_early" or stop["strategy"] in already_told:
            continue
        where = where_stopped(stop)
        lines.append(f"{stop['strategy']} was stopped early{f', {where}' if where else ''}: {stop['message']}.")
    finalists = [s for s, v in (planning.get("strategies") or {}).items() if v.get("status") == "finalist"]
    fractions = planning.get("round_fractions") or []
    stops = planning.get("stopped") or []
    # a strategy whose round-1 run finished before the budget stopped its next one carries what that run measured
    screened = [s["strategy"] for s in stops if (s.get("prediction") or {}).get("measured") is not None]
    # where nothing is chosen, the line that says why comes first, before each strategy's stop
    if not finalists and stops and all(s["reason"] == "budget" and s.get("round") in (0, 1) for s in stops) and screened:
        names = and_list(screened)
        lines.insert(0, f"No strategy got past round 1 within the time budget: only {names} finished "
                     f"{'screening runs' if len(screened) > 1 else 'a screening run'} there, on a fraction of the data, which no verdict "
                     "reads: tunelab compare --resume with a larger --budget-minutes goes on from there.")
    elif not finalists and stops and all(s["reason"] == "budget" and s.get("round") in (0, 1) for s in stops):
        lines.insert(0, "No run finished within the time budget, so nothing was measured: tunelab compare --resume with a "
                     "larger --budget-minutes goes on from there.")
    elif not finalists and fractions and any(s["reason"] == "budget" for s in stops):
        lines.append(f"No strategy reached the final round (data fraction {fractions[-1]:g}) within the budget: the "
                     "choice above rests on the largest fraction that was measured. tunelab compare --resume with a "
                     "larger --budget-minutes goes on from there.")
    elif no_final_success(planning):
        failed = _failed_in_final_round(planning)
        lines.append(f"No run of the final round (data fraction {fractions[-1]:g}) succeeded ({', '.join(failed)} failed "
                     "there): the choice above rests on a screening run, with no test score and no saved model. Fix the "
                     "failure (results.csv has its message); tunelab compare --resume goes on from there.")
    return lines


def no_final_success(planning: dict[str, Any] | None) -> bool:
    """Whether a planned comparison (``planning``: its summary) reached its final round with no strategy left to
    finish it: every finalist failed there (none is a finalist, and the budget stopped none)."""
    if not planning:
        return False
    statuses = [v.get("status") for v in (planning.get("strategies") or {}).values()]
    return "finalist" not in statuses and bool(_failed_in_final_round(planning)) and not strategies_budget_stopped(planning)


def strategies_budget_stopped(planning: dict[str, Any] | None) -> list[str]:
    """The strategies a planned comparison's time budget stopped (a run not started or interrupted), in stop order:
    from the plan, since a run the budget left unstarted has no record."""
    return [s["strategy"] for s in (planning or {}).get("stopped") or [] if s.get("reason") == "budget"]


def _failed_in_final_round(planning: dict[str, Any]) -> list[str]:
    fractions = planning.get("round_fractions") or []
    return [s["strategy"] for s in planning.get("stopped") or [] if s.get("reason") == "failed" and fractions
            and len(fractions) > 1 and math.isclose(float(s.get("data_fraction") or 0.0), float(fractions[-1]))]


def _job(run: PlannedRun, base: TrainConfig, searches: dict[str, dict], opts: CompareOptions,
         split_fingerprint: str | None = None) -> Job:
    """The executor's job for a planned run (on resume: continued from its checkpoint when its options match)."""
    config = run.config
    if opts.reuse and run.folder.is_dir():
        record_path = run.folder / RECORD_NAME
        old = _safe_read(record_path) if record_path.is_file() else {}
        recorded = _recorded_settings(run.folder, old)
        changed = config.changed_from_run(recorded, _num_blocks(old)) if isinstance(recorded, Mapping) else []
        trained = old.get("run_info", {}).get("status") == "success" or any(
            (run.folder / "checkpoints").glob("checkpoint-*"))
        ran_on = (old.get("meta_info") or {}).get("split_fingerprint")
        other_data = bool(split_fingerprint and ran_on and ran_on != split_fingerprint)
        if changed and trained and not other_data:  # training it again would delete it, for a flag given by mistake
            raise ConfigError(f"{setting('resume', True)} found {run.folder} trained with other settings "
                              f"({_changes(changed)}): resume with the settings it ran with, delete {run.folder} to train "
                              f"it again with these, or start the comparison again with {setting('overwrite', True)}")
        if changed and other_data:  # the comparison's data changed (checked in _checked_out): as for an edited file
            logging.getLogger("tunelab").warning(f"{run.folder} holds a run on other data (the same --data, other "
                                                 f"rows) and other settings ({_changes(changed)}): trained again")
        elif changed:  # a run that failed (a learning rate that diverged) and is given another: nothing is lost
            logging.getLogger("tunelab").warning(f"{run.folder} holds a failed run with other settings "
                                                 f"({_changes(changed)}): trained again with these")
        config = config.replace(resume=not changed, overwrite=bool(changed))  # else: from its last checkpoint
    extra = {"lr_search": searches[run.strategy]} if run.strategy in searches else {}
    spec = {"config": config.to_dict(), "split_seed": base.seed, "extra_record": extra}
    return Job(run.run_id, spec, run.folder, timeout_s=opts.run_timeout_s)


def _changes(changed: list[tuple[str, Any, Any]]) -> str:
    """``--epochs 1500 → 1, --lr 0.001 → 0.0001 ...``: the first three of :meth:`TrainConfig.changed_from`'s list."""
    shown = ", ".join(setting_change(name, old, new, "default") for name, old, new in changed[:3])
    return shown + (" ..." if len(changed) > 3 else "")


def _safe_read(path: Path) -> dict[str, Any]:
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
