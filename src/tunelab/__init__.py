"""tunelab: adapt a pre-trained language model by transfer learning or full fine-tuning, compare the
strategies on your own data and hardware, and get a justified recommendation.

>>> from tunelab import TrainConfig, train
>>> config = TrainConfig(model="minilm", data="rotten-tomatoes", strategy="lora", epochs=1, overwrite=True)
>>> record = train(config)  # doctest: +SKIP
>>> sorted(record["metrics"]["test"])  # doctest: +SKIP
['accuracy', 'f1_macro', 'loss']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public API, imported lazily so that `import tunelab` (and the CLI's --help) stays fast.
# `compare` is also a subpackage of that name, callable as the function: `tunelab.compare(base, ["head", "lora"])`.
_EXPORTS = {
    "TrainConfig": "tunelab.config",
    "train": "tunelab.run.training",
    "compare": "tunelab.compare",
    "load_task_data": "tunelab.data",
    "list_datasets": "tunelab.data",
    "load_model": "tunelab.models",
    "list_models": "tunelab.models",
    "load_artifact": "tunelab.run.artifacts",
    "predict": "tunelab.run.artifacts",
    "evaluate_artifact": "tunelab.run.evaluation",
    "STRATEGIES": "tunelab.strategies",
    "register_strategy": "tunelab.strategies",
    "TunelabError": "tunelab.errors",
    "recommend": "tunelab.advice.recommend",
    "estimate": "tunelab.advice.estimate",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")
