"""The record of one run, shared by ``train`` (``metrics.json``), ``compare`` and the report.

One JSON per run, in four parts (after peft's ``method_comparison``):

``run_info``
    ``run_id``, ``strategy``, ``seed``, ``data_fraction``, ``status`` (``"success"`` or
    ``"failed"``), ``error`` (the message when failed), ``started_at`` (ISO time), ``wall_time_s``.
``train_info``
    ``train_time_s`` (training steps only), ``eval_time_s`` (all evaluation), ``cache_time_s``
    (computing frozen features, when used), ``samples_per_s``, ``tokens_per_s`` (training),
    ``peak_memory_mb`` and ``memory_kind`` (``"rss"`` on CPU: peak resident set size of the process;
    ``"cuda"``: peak allocated), ``trainable_params``, ``total_params``, ``trainable_share``
    (trainable / total, as peft counts them), ``epochs`` (list of per-epoch dicts: ``epoch``,
    ``train_loss`` and the validation metrics prefixed ``val_``), ``batch_size`` (the one finally
    used), ``notes`` (list of strings: batch-size fallbacks and the like).
``metrics``
    ``{"validation": {...}, "test": {...}}``: ``accuracy`` and ``f1_macro`` (and ``loss``) for
    classification; ``loss`` and ``perplexity`` for causal LM.
``meta_info``
    ``model``, ``task``, ``data`` (source), ``data_fingerprint``, ``n_train``, ``n_validation``,
    ``n_test``, ``label_names``, ``num_blocks`` (the model's transformer blocks), ``versions`` (python, torch, transformers, peft, accelerate, tunelab),
    ``device``.
``config``
    The fully resolved :class:`tunelab.config.TrainConfig` as a dict.
``artifact``
    ``path`` and ``size_mb`` of what was saved, and ``format`` (``"transformers"`` or ``"peft"``).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


def primary_metric(task: str) -> str:
    """The metric a comparison ranks by: accuracy for classification, perplexity for causal LM."""
    return "accuracy" if task == "classification" else "perplexity"


def higher_is_better(metric: str) -> bool:
    return metric not in {"loss", "perplexity"}


def library_versions() -> dict[str, str]:
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


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically: to a temporary file beside the target, then rename into place."""
    from tunelab.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
