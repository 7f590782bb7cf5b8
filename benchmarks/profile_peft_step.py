"""Where one training step's memory goes: the activations autograd stores, peak RSS and step time.

Builds the model as tunelab does (``load_model`` + the strategy's ``prepare``), runs forward + backward on a
random batch of BATCH x LENGTH tokens four times (no optimizer) and prints the bytes of distinct storages
saved for the backward pass (``torch.autograd.graph.saved_tensors_hooks``), the fastest of steps 2-4 and the
process's peak RSS. Options: TrainConfig fields as ``field=value``, plus ``gc=1`` (gradient checkpointing,
non-reentrant), ``bf16=1`` (the frozen base in bfloat16, steps under bf16 autocast) and ``peft_forward=1`` (LoRA
layers with peft's own forward instead of tunelab's in-place one, :mod:`tunelab.strategies.fused_lora`).

    PYTHONPATH=src .venv/bin/python benchmarks/profile_peft_step.py minilm lora 32 64 lora_dropout=0.1
    MALLOC_MMAP_THRESHOLD_=1048576 PYTHONPATH=src .venv/bin/python benchmarks/profile_peft_step.py minilm lora 32 64
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time

import torch
import yaml

from tunelab.config import TrainConfig
from tunelab.models import load_model, load_tokenizer, model_layout
from tunelab.strategies import get_strategy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("strategy")
    parser.add_argument("batch", type=int)
    parser.add_argument("length", type=int)
    parser.add_argument("options", nargs="*", metavar="field=value",
                        help="TrainConfig fields, plus gc=1, bf16=1, peft_forward=1 (see the module's docstring)")
    args = parser.parse_args(argv)
    bad = [a for a in args.options if "=" not in a]
    if bad:
        parser.error(f"{bad[0]!r} is not field=value")
    model_name, strategy, batch, length = args.model, args.strategy, args.batch, args.length
    options = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.options)}
    checkpointing, bf16 = bool(options.pop("gc", 0)), bool(options.pop("bf16", 0))
    peft_forward = bool(options.pop("peft_forward", 0))
    config = TrainConfig(model=model_name, strategy=strategy, task="classification",
                         base_dtype="bf16" if bf16 else "fp32", **options)
    torch.manual_seed(0)
    tokenizer = load_tokenizer(model_name)
    model, _ = load_model(model_name, task="classification", label_names=["a", "b"], tokenizer=tokenizer,
                          dtype=torch.bfloat16 if bf16 else torch.float32)
    model = get_strategy(strategy).prepare(model, model_layout(model), config)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    if peft_forward:
        for module in model.modules():
            vars(module).pop("forward", None)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (batch, length), generator=g)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (batch,), generator=g)}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    times = []
    for _ in range(4):
        saved.clear()
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast():
            loss = model(**inputs).loss
        loss.backward()
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{model_name} {strategy} {args.options}: saved {sum(saved.values()) / 2**20:.0f} MB in {len(saved)} storages; "
          f"step {min(times[1:]):.2f} s; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
