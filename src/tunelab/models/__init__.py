"""Pre-trained models: where they come from (``loading``: built-ins, local folders, hub ids), where
their parts are (``layout``: body, blocks, embeddings, head, found by a probe pass) and which modules
an adapter goes on (``targets``), for every architecture.

>>> from tunelab.models import load_model, model_layout
"""

from tunelab.models.layout import (
    Layout,
    max_input_length,
    model_layout,
    position_limit,
    soft_prompt_length,
)
from tunelab.models.loading import (
    BUILTIN_MODELS,
    BuiltinModel,
    cache_dir,
    has_lm_head,
    is_decoder,
    label_config,
    list_models,
    load_base_parts,
    load_model,
    load_pretrained_mlm,
    load_tokenizer,
    measurement_file,
    model_identity,
    model_num_blocks,
    model_pad_token_id,
    read_last_token_from_mask,
    resolve_model,
)
from tunelab.models.probe import probe_logits, probe_pass, separates_documents, unused_trainable
from tunelab.models.targets import AdapterTargets, ia3_targets, lora_targets

__all__ = [
    "BUILTIN_MODELS",
    "AdapterTargets",
    "BuiltinModel",
    "Layout",
    "cache_dir",
    "has_lm_head",
    "probe_logits",
    "probe_pass",
    "separates_documents",
    "unused_trainable",
    "ia3_targets",
    "is_decoder",
    "label_config",
    "list_models",
    "load_base_parts",
    "load_pretrained_mlm",
    "load_model",
    "load_tokenizer",
    "lora_targets",
    "max_input_length",
    "measurement_file",
    "model_identity",
    "model_layout",
    "model_num_blocks",
    "model_pad_token_id",
    "position_limit",
    "read_last_token_from_mask",
    "resolve_model",
    "soft_prompt_length",
]
