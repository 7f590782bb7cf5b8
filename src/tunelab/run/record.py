"""The record of one run, shared by ``train`` (``metrics.json``), ``compare`` and the report.

:class:`RunRecord` is the one description of its shape. It is built in one place for each outcome
(:meth:`RunRecord.success` by :func:`tunelab.run.training.train`, :meth:`RunRecord.failure` for a run
that failed or whose process died), written with :meth:`RunRecord.to_dict` and read back with
:meth:`RunRecord.from_dict`, which accepts records of older versions (missing optional keys are
``None``; keys it does not know are kept and written back unchanged).

On disk it is one JSON object in six parts (after peft's ``method_comparison``):

``run_info`` (:class:`RunInfo`)
    ``run_id``, ``strategy``, ``seed``, ``data_fraction``, ``status`` (``"success"`` or
    ``"failed"``), ``error`` (the message when failed), ``started_at`` (ISO time), ``wall_time_s``;
    a run of ``compare`` adds ``split_seed`` and ``cpu_time_s``.
``train_info`` (:class:`TrainInfo`; empty for a failed run)
    ``train_time_s`` (training steps only), ``eval_time_s`` (all evaluation), ``cache_time_s``
    (computing frozen features, when used), ``samples_per_s``, ``tokens_per_s`` (training),
    ``peak_memory_mb`` and ``memory_kind`` (``"rss"`` on CPU: peak resident set size of the process during
    the run, started afresh for a second run in one process, :func:`tunelab.run.heap.start_run_peak`;
    ``"cuda"``: peak allocated), ``trainable_params``, ``total_params``, ``trainable_share``
    (trainable / total, as peft counts them), ``learning_rate``, ``batch_size`` (the one finally
    used), ``gradient_accumulation_steps``, ``max_length``, ``precision``, ``attention_recomputed``,
    ``num_epochs``, ``steps`` (optimizer steps taken), ``epochs`` (list of per-epoch dicts: ``epoch``, ``train_loss`` and the validation metrics
    prefixed ``val_``), ``cache`` (the frozen-layer cache's facts), ``forgetting`` (what the run lost on a
    reference text: :class:`tunelab.run.forgetting.Forgetting` as a dict, or ``{"error": ...}``), ``notes`` (list of strings:
    batch-size fallbacks and the like).
``metrics`` (:class:`Metrics`; empty for a failed run)
    ``{"validation": {...}, "test": {...}}``: ``accuracy`` and ``f1_macro`` (and ``loss``) for
    classification; ``loss`` and ``perplexity`` for causal LM.
``meta_info`` (:class:`MetaInfo`)
    ``model``, ``model_path``, ``task``, ``data`` (source), ``data_fingerprint``, ``n_train``,
    ``n_validation``, ``n_test``, ``scored_texts`` (causal LM), ``label_names``, ``num_blocks`` (the model's transformer blocks),
    ``versions`` (python, torch, transformers, peft, accelerate, tunelab), ``device``.
``config``
    The fully resolved :class:`tunelab.config.TrainConfig` as a dict.
``artifact`` (:class:`Artifact`, ``null`` for a failed run)
    ``path`` and ``size_mb`` of what was saved, and ``format`` (``"transformers"`` or ``"peft"``).

Any other top-level key (``lr_search``, written by ``compare --tune-lr``) is kept in
:attr:`RunRecord.extra`.

:func:`tunelab.run.training.train` returns the record's dict form (``record["metrics"]["test"]``),
as it always has; code inside tunelab reads the typed fields (``record.metrics.test``).
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from tunelab.config import OPERATIONAL
from tunelab.io import read_json, write_json
from tunelab.metrics import higher_is_better, primary_metric  # re-exported: older imports read them here

__all__ = [
    "Artifact", "MetaInfo", "Metrics", "RunInfo", "RunRecord", "TrainInfo", "as_record", "higher_is_better",
    "library_versions", "primary_metric", "read_json", "write_json",
]  # fmt: skip

SUCCESS, FAILED = "success", "failed"


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on."""
    import accelerate
    import peft
    import torch
    import transformers

    from tunelab import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "tunelab": __version__,
    }


# ----------------------------------------------------------------------------- the parts


class _Part:
    """A record section: typed fields, written in field order, ``None`` fields left out unless named
    in ``ALWAYS`` (so a record reads back to the same JSON), unknown keys kept in ``extra``."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset()
    extra: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in self.ALWAYS:
                out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, values: Any):
        values = dict(values) if isinstance(values, Mapping) else {}
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known, extra={k: v for k, v in values.items() if k not in names})


@dataclass
class RunInfo(_Part):
    """What ran and how it ended."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"run_id", "strategy", "seed", "data_fraction", "status", "error", "started_at", "wall_time_s"}
    )
    run_id: str = ""
    strategy: str | None = None
    seed: int | None = None
    data_fraction: float = 1.0
    status: str = FAILED
    error: str | None = None
    started_at: str | None = None
    wall_time_s: float | None = None
    split_seed: int | None = None
    cpu_time_s: float | None = None
    process: str | None = None
    """How a comparison's run process started: ``forked`` from the warm server (its ``cpu_time_s`` leaves out the
    library imports) or ``fresh`` (:mod:`tunelab.run.isolate`); None in-process."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainInfo(_Part):
    """How training went: time, speed, memory, parameters, the options finally used, the epochs."""

    train_time_s: float | None = None
    eval_time_s: float | None = None
    cache_time_s: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    peak_memory_mb: float | None = None
    """The largest of the processes' peaks (one process: its own)."""
    peak_memory_mb_per_rank: list[float] | None = None
    """Each process's peak, in rank order (runs over several processes only)."""
    world_size: int | None = None
    """How many processes trained the run together (torchrun / accelerate launch)."""
    memory_kind: str | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_share: float | None = None
    learning_rate: float | None = None
    head_learning_rate: float | None = None
    """The new task head's own rate (its optimizer group); ``None`` where no new head trains (causal LM)."""
    batch_size: int | None = None
    """Examples per process per forward pass (``--batch-size``, or what the out-of-memory search came down to)."""
    gradient_accumulation_steps: int | None = None
    effective_batch_size: int | None = None
    """Examples per optimizer step: ``batch_size x gradient_accumulation_steps x world_size``."""
    max_length: int | None = None
    document_mask: bool | None = None
    """Causal LM: whether each packed text attended only to itself, as the run did it (``config.document_mask`` is
    the setting as asked; a soft prompt, or a model that fails the probe, packs across texts whatever was asked);
    the same value as the model's ``tunelab.json``, which ``evaluate`` reads. None: not a causal LM, or a record
    written before it was kept."""
    precision: str | None = None
    attention_recomputed: bool | None = None
    num_epochs: float | None = None
    """The epochs the run trained for: ``--epochs``, or the choice for the data size when it was not given."""
    steps: int | None = None
    """The optimizer steps the run took (the Trainer's global step at its end; a resumed run counts those before its
    checkpoint too): the step at which trackers show the run's final numbers."""
    epochs: list[dict[str, Any]] | None = None
    cache: dict[str, Any] | None = None
    forgetting: dict[str, Any] | None = None
    as_loaded_validation: dict[str, float] | None = None
    """A causal LM's validation loss and perplexity before any adaptation (the model as loaded), where the run's
    prepared model started as it; None otherwise."""
    notes: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Metrics(_Part):
    """Final metrics per split (``{"accuracy": ..., "f1_macro": ..., "loss": ...}``)."""

    validation: dict[str, float] | None = None
    test: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, split: str, metric: str) -> float | None:
        """``metrics[split][metric]``, or ``None`` when the split or the metric is not recorded."""
        values = getattr(self, split, None) if split in ("validation", "test") else self.extra.get(split)
        return values.get(metric) if isinstance(values, Mapping) else None


@dataclass
class MetaInfo(_Part):
    """What the run was about: model, task, data, sizes, library versions, device."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"model", "task", "data"})
    model: str | None = None
    model_path: str | None = None
    task: str | None = None
    data: str | None = None
    data_fingerprint: str | None = None
    split_fingerprint: str | None = None
    """The data as split, before this run cut its training split (:attr:`tunelab.data.TaskData.split_fingerprint`)."""
    n_train: int | None = None
    n_validation: int | None = None
    n_test: int | None = None
    scored_texts: dict[str, int] | None = None
    """Causal LM: the texts of the validation and test splits with a predicted token, the units their metrics and a
    comparison's intervals count. Every text of ``n_validation`` / ``n_test`` but one with nothing to predict: under
    ``--loss-on assistant`` a conversation with no assistant turn, or a text of one token that opens a block (a
    block's first token is never predicted); a test split left unscored (a screening run) counts 0."""
    label_names: list[str] | None = None
    class_counts: dict[str, int] | None = None
    """Training examples per class (classification), in ``label_names`` order."""
    num_blocks: int | None = None
    versions: dict[str, str] | None = None
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact(_Part):
    """The saved model: where, in which format, how large."""

    path: str | None = None
    format: str | None = None
    size_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the record

_SECTIONS = ("run_info", "train_info", "metrics", "meta_info", "config", "artifact")


@dataclass
class RunRecord(Mapping):
    """One run's record (see the module docstring for every field).

    It also reads like the JSON dict it is written as (``record["metrics"]["test"]``, ``record.get``),
    a bridge for code written against the dict: each access returns a fresh copy of that section, so
    change the typed fields (``record.run_info.split_seed = ...``), not what indexing returns.
    """

    run_info: RunInfo
    train_info: TrainInfo = field(default_factory=TrainInfo)
    metrics: Metrics = field(default_factory=Metrics)
    meta_info: MetaInfo = field(default_factory=MetaInfo)
    config: dict[str, Any] = field(default_factory=dict)
    artifact: Artifact | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ the two ways a run ends

    @classmethod
    def success(cls, config: Any, *, started_at: str, wall_time_s: float, train_info: TrainInfo, metrics: Metrics,
                meta_info: MetaInfo, artifact: Artifact | None) -> RunRecord:
        """The record of a run of ``config`` (a :class:`~tunelab.config.TrainConfig`) that finished (``artifact``
        None: a screening run, which keeps no model)."""
        cfg = config.to_dict()
        return cls(
            run_info=_run_info(cfg, status=SUCCESS, error=None, started_at=started_at, wall_time_s=wall_time_s),
            train_info=train_info, metrics=metrics, meta_info=meta_info, config=cfg, artifact=artifact,
        )  # fmt: skip

    @classmethod
    def failure(cls, config: Any, error: str, *, started_at: str | None = None, wall_time_s: float | None = None,
                extra: Mapping[str, Any] | None = None) -> RunRecord:
        """The record of a run of ``config`` (a ``TrainConfig`` or its dict) that failed with ``error``:
        the same sections as a successful one, with what is known before training."""
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        try:
            versions = library_versions()
        except Exception:  # noqa: BLE001 - the record must be written even when a library is broken
            versions = {}
        record = cls(
            run_info=_run_info(cfg, status=FAILED, error=error, wall_time_s=wall_time_s,
                               started_at=started_at or datetime.now(UTC).isoformat(timespec="seconds")),
            meta_info=MetaInfo(model=cfg.get("model"), task=cfg.get("task"), data=cfg.get("data"), versions=versions),
            config=cfg,
        )  # fmt: skip
        return record.merged(extra or {})

    # ------------------------------------------------------------------ reading and writing

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    __eq__ = Mapping.__eq__  # a record equals its dict form
    __hash__ = None  # type: ignore[assignment]

    @property
    def succeeded(self) -> bool:
        """Whether ``run_info.status`` is ``"success"``."""
        return self.run_info.status == SUCCESS

    @property
    def task(self) -> str | None:
        """``meta_info.task``, else ``config.task``."""
        return self.meta_info.task or self.config.get("task")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``metrics.json``."""
        out: dict[str, Any] = {
            "run_info": self.run_info.to_dict(),
            "train_info": self.train_info.to_dict(),
            "metrics": self.metrics.to_dict(),
            "meta_info": self.meta_info.to_dict(),
            "config": dict(self.config),
            "artifact": None if self.artifact is None else self.artifact.to_dict(),
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunRecord:
        """A record from its JSON form (any version: missing parts are empty, unknown keys kept)."""
        values = values if isinstance(values, Mapping) else {}
        config = values.get("config")
        artifact = values.get("artifact")
        return cls(
            run_info=RunInfo.from_dict(values.get("run_info")),
            train_info=TrainInfo.from_dict(values.get("train_info")),
            metrics=Metrics.from_dict(values.get("metrics")),
            meta_info=MetaInfo.from_dict(values.get("meta_info")),
            config=dict(config) if isinstance(config, Mapping) else {},
            artifact=Artifact.from_dict(artifact) if isinstance(artifact, Mapping) else None,
            extra={k: v for k, v in values.items() if k not in _SECTIONS},
        )

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """The record in ``path`` (``metrics.json``). A run folder that was moved (to another machine, into a
        repository; its name kept, its old place gone) is where the run is now: ``config["out"]`` is pointed at
        it, so a moved comparison still finds each run's per-example outputs beside its record."""
        record = cls.from_dict(read_json(path))
        here = Path(path).resolve().parent
        out = record.config.get("out")
        if isinstance(out, str) and out and Path(out).name == here.name and not Path(out).exists():
            record.config["out"] = str(here)
        return record

    def write(self, path: str | Path) -> None:
        """Write the record to ``path`` atomically."""
        write_json(path, self.to_dict())

    def merged(self, extra: Mapping[str, Any]) -> RunRecord:
        """A copy with ``extra`` merged in: a dict for an existing section updates it, anything else is
        set at the top level (e.g. ``{"lr_search": {...}}``)."""
        if not extra:
            return self
        values = self.to_dict()
        for key, value in extra.items():
            if isinstance(value, Mapping) and isinstance(values.get(key), dict):
                values[key].update(value)
            else:
                values[key] = value
        return RunRecord.from_dict(values)


def _run_info(cfg: Mapping[str, Any], *, status: str, error: str | None, started_at: str,
              wall_time_s: float | None) -> RunInfo:
    return RunInfo(
        run_id=Path(cfg.get("out") or ".").name,
        strategy=cfg.get("strategy"),
        seed=cfg.get("seed"),
        data_fraction=cfg.get("data_fraction", 1.0),
        status=status,
        error=error,
        started_at=started_at,
        wall_time_s=None if wall_time_s is None else round(wall_time_s, 3),
    )


def as_record(run: RunRecord | Mapping[str, Any]) -> RunRecord:
    """``run`` as a :class:`RunRecord` (records read from JSON, or built by hand, are dicts)."""
    return run if isinstance(run, RunRecord) else RunRecord.from_dict(run)


def run_params(config: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What a run logs to MLflow as parameters, the one place that decides it for a plain ``train`` and for a
    comparison's runs alike: ``tunelab.<setting>`` for each setting of ``config`` (a :class:`~tunelab.config.TrainConfig`
    as a dict) that changes what is trained (not :data:`~tunelab.config.OPERATIONAL` ones, nor those left to their
    default, ``None``), and from ``meta`` (a record's ``meta_info``) the data as read and its fingerprint, the task
    and the number of training examples. Prefixed: the Trainer logs its own arguments and the model's config
    unprefixed (``seed``, ``learning_rate``, ...), and MLflow refuses a parameter logged twice with two values.

    >>> run_params({"strategy": "lora", "lr": None, "out": "runs/x"}, {"data_fingerprint": "ab12"})
    {'tunelab.strategy': 'lora', 'tunelab.data_fingerprint': 'ab12'}
    """
    params = {name: value for name, value in config.items()
              if name not in OPERATIONAL and value is not None and value != {}}
    meta = meta or {}
    if meta.get("data"):  # the data as read (in-memory data is said so), not the config's default dataset name
        params["data"] = meta["data"]
    for name in ("task", "data_fingerprint", "n_train"):
        if meta.get(name) is not None:
            params[name] = meta[name]
    return {f"tunelab.{name}": str(value)[:500] for name, value in params.items()}
