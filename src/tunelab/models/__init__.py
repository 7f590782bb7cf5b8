"""Pre-trained models: where they come from (``loading``: built-ins, local folders, hub ids) and where
their parts are (``layout``: blocks, embeddings, head), for every architecture.

>>> from tunelab.models import load_model, model_layout
"""

from tunelab.models.layout import Layout, model_layout
from tunelab.models.loading import (
    BUILTIN_MODELS,
    BuiltinModel,
    cache_dir,
    label_config,
    list_models,
    load_model,
    load_tokenizer,
    resolve_model,
)

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "Layout",
    "cache_dir",
    "label_config",
    "list_models",
    "load_model",
    "load_tokenizer",
    "model_layout",
    "resolve_model",
]
