"""Score a saved artifact on data (``tunelab evaluate``)."""

from __future__ import annotations

import math

import torch

from tunelab.errors import DataError, some_of


@torch.inference_mode()
def evaluate_artifact(path, data_spec: str, *, split: str = "test", text_column: str = "text", label_column: str = "label", seed: int = 42, batch_size: int = 32) -> dict:
    from tunelab.data import load_task_data
    from tunelab.run.artifacts import load_artifact
    from tunelab.run.cache import build_device
    from tunelab.run.training import classification_metrics, tokenize

    device = build_device()  # the GPU when there is one, as for training
    model, tokenizer, info = load_artifact(path, device)
    # "all": every row of the data as it is, unsplit; a split: the one training made of it (the same seed)
    data = load_task_data(data_spec, task=info["task"], text_column=text_column, label_column=label_column, seed=seed,
                          split=split != "all")
    pairs = data.text_pairs
    if pairs != bool(info.get("text_pair")):
        raise DataError(f"{path} was trained on {'text pairs' if info.get('text_pair') else 'single texts'}, and "
                        f"--text-column {text_column} gives {'pairs' if pairs else 'one text'} per example: "
                        + ("name its two text columns, e.g. --text-column premise,hypothesis" if info.get("text_pair")
                           else "name one text column"))
    if info["task"] == "classification":
        unknown = sorted(set(data.label_names) - set(info["label_names"]))
        if unknown:
            from tunelab.data.validate import all_numeric

            ids = all_numeric(data.label_names) and not all_numeric(info["label_names"])  # ids against the model's names
            raise DataError(f"{data_spec}: label(s) {some_of(unknown)} were not seen in training (the model knows "
                            f"{some_of(info['label_names'])}); evaluate on data with the model's classes"
                            + (", e.g. the integer ids with their names in a 'label_text' column" if ids else ""))
        remap = [info["label_names"].index(n) for n in data.label_names]
        data.train, data.validation, data.test = (
            ds.map(lambda b: {"label": [remap[x] for x in b["label"]]}, batched=True) for ds in (data.train, data.validation, data.test)
        )
        tokenizer.padding_side = "right"
    tokenized, _ = tokenize(data, tokenizer, info.get("max_length") or 128, keep=info.get("keep", "start"))
    splits = ["train"] if split == "all" else [split]  # "all": loaded unsplit, every row in train
    from datasets import concatenate_datasets

    ds = concatenate_datasets([tokenized[s] for s in splits])
    from tunelab.run.padding import one_pass_attention, task_collator

    # classification: padded as in training; causal LM: blocks of one length (a short tail alone), so no pad is scored
    collate = task_collator(tokenizer, "classification", info.get("max_length") if info["task"] == "classification" else None)
    # token types (the second text of a pair) where the model takes them
    keys = ("input_ids", "attention_mask", "labels") + (("token_type_ids",) if "token_type_ids" in tokenizer.model_input_names else ())
    losses, preds, labels, n = [], [], [], 0
    with one_pass_attention():  # on a GPU: no per-shape cuDNN plans (tunelab.run.padding)
        for i in range(0, len(ds), batch_size):
            rows = ds[i : i + batch_size]
            batch = collate([{k: rows[k][j] for k in keys if k in rows} for j in range(len(rows["input_ids"]))]).to(device)
            if info["task"] == "classification":
                out = model(**batch)
                preds.append(out.logits.argmax(-1).cpu())
                labels.append(batch["labels"].cpu())
            else:
                out = model(input_ids=batch["input_ids"], labels=batch["input_ids"])
            losses.append(float(out.loss) * len(rows["input_ids"]))
            n += len(rows["input_ids"])
    result = {"split": split, "examples": n, "loss": sum(losses) / max(n, 1)}
    if info["task"] == "classification":
        from types import SimpleNamespace

        result.update(classification_metrics(SimpleNamespace(predictions=torch.cat(preds).numpy(), label_ids=torch.cat(labels).numpy())))
    else:
        result["perplexity"] = math.exp(min(result["loss"], 50))
    return result

