"""One forward pass that shows how a model's parts are wired, whatever its architecture.

Reading names and classes tells where the blocks and the task head are; it does not tell how the
blocks are called, what they return, which module's output enters the first block, which body
modules run after the last block, the order in which a block uses its projections, or which
position a classification head reads. :func:`probe_model` runs the model once on a two-row probe
input (the second row padded) with hooks that record all of that, and a gradient of the logits with
respect to the last block's output that shows which positions the head reads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

PROBE_LENGTH = 6


def is_linear(module: nn.Module) -> bool:
    """A dense projection peft can adapt: ``nn.Linear`` or transformers' ``Conv1D`` (GPT-2)."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, (nn.Linear, Conv1D))


@dataclass
class Probe:
    """What one forward pass showed (see the module docstring)."""

    hidden_size: int
    block_input: tuple[str, Any]  # ("arg", 0) or ("kwarg", "hidden_states"): how blocks get their hidden states
    block_output: int | None  # None: blocks return a tensor; k: a tuple of k items, hidden states first
    entry: str | None  # name of the module whose output is block 0's input (None: no module returns it as is)
    called: dict[str, tuple[int, int]]  # body module name -> (start, end) call ticks (first call)
    blocks_span: tuple[int, int]  # ticks: start of the first block, end of the last
    linear_order: list[str] = field(default_factory=list)  # block 0's projections (relative names), in call order
    first_group: list[str] = field(default_factory=list)  # those that read the same tensor as the first one
    ranks: dict[str, int] = field(default_factory=dict)  # body module name -> dimensions of its (first) output
    head_reads: str = "all"  # "first", "last" (last non-padding token) or "all"
    block_runs: int = 1  # times the first block ran in the pass: > 1 when layers share its weights (ALBERT)
    last_block_io: tuple[torch.Tensor, torch.Tensor] | None = field(repr=False, default=None)  # (input, output)
    mask: torch.Tensor | None = field(repr=False, default=None)


def input_embeddings(model: nn.Module) -> nn.Module | None:
    """The model's input token embeddings, or None where it has no one table of them (Canine reads characters through
    hashed embeddings, and transformers raises NotImplementedError for it)."""
    try:
        return model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None


def _probe_inputs(model: nn.Module, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of ordinary token ids (no padding id), the second right-padded by two positions."""
    config = model.config
    table = input_embeddings(model)
    vocab = int(getattr(config, "vocab_size", 0) or getattr(table, "num_embeddings", 0) or 64)  # 64: no token table
    pad = getattr(config, "pad_token_id", None)
    reserved = {pad, getattr(config, "bos_token_id", None), getattr(config, "eos_token_id", None)}
    ids = [i for i in range(min(vocab, 64) - 1, 0, -1) if i not in reserved][:PROBE_LENGTH]
    ids = (ids * PROBE_LENGTH)[:PROBE_LENGTH]
    rows = 2 if pad is not None else 1  # decoder classifiers refuse batches without a padding id
    input_ids = torch.tensor([ids] * rows, dtype=torch.long, device=device)
    mask = torch.ones_like(input_ids)
    if rows == 2:
        input_ids[1, -2:] = pad
        mask[1, -2:] = 0
    return input_ids, mask


def probe_pass(model: nn.Module, *, record_grad: bool = True) -> tuple[torch.Tensor | None, str | None]:
    """One pass of ``model`` on the two-row probe input: ``(logits, None)`` (detached, float32), or ``(None, why)`` in
    one line when the model's code cannot run it.

    In eval mode (no dropout: the seeded random stream is not drawn), under bfloat16 autocast when some weights are
    bfloat16 (``--base-dtype bf16``), as training runs, and with ``record_grad`` with gradients recorded (autograd's
    in-place checks run during the forward pass). It catches, before anything is written, what the model's own code
    cannot take from a strategy (Longformer builds its global-attention mask from ``input_ids``, which prompt tuning
    replaces with embeddings), and its logits, compared before and after a strategy prepares the model, show whether
    the prepared model still computes what the model as loaded computes (adapters that start as the identity: LoRA,
    IA3, added zero biases; not a random soft prompt), whatever the strategy."""
    import traceback
    from pathlib import Path

    first = next(model.parameters(), None)
    if first is None:
        return None, None
    ids, mask = _probe_inputs(model, first.device)
    bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        with (torch.enable_grad() if record_grad else torch.no_grad(),
              torch.autocast(first.device.type, dtype=torch.bfloat16, enabled=bf16)):
            logits = model(input_ids=ids, attention_mask=mask).logits
        return logits.detach().float(), None
    except Exception as exc:  # noqa: BLE001 - any failure of the model's code is the answer
        where = traceback.extract_tb(exc.__traceback__)[-1]
        message = (str(exc).strip().splitlines() or [""])[0]
        return None, f"{type(exc).__name__}: {message} (in {Path(where.filename).name}, line {where.lineno})"
    finally:
        model.train(was_training)


def probe_logits(model: nn.Module) -> torch.Tensor | None:
    """``model``'s logits on the probe input, or None when it cannot run them (:func:`probe_pass`, no gradients)."""
    return probe_pass(model, record_grad=False)[0]


def unused_trainable(model: nn.Module) -> list[str] | None:
    """The trainable parameters that one forward and backward pass on the probe input leaves without a gradient
    (weights of a branch the task never calls); ``None`` where one pass cannot tell, a model that drops whole layers
    at random in training (``layerdrop``). DistributedDataParallel must look for unused parameters after every
    backward pass only when there are some (``find_unused_parameters``, which transformers turns on for every model:
    an extra traversal of the graph each step, and a warning where nothing was unused). Eval mode, as
    :func:`probe_pass`: no dropout, so the seeded random stream is not drawn; gradients are cleared after."""
    config = getattr(model, "config", None)
    if any(value for name, value in vars(config or object()).items() if "layerdrop" in name and isinstance(value, float)):
        return None
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    first = next(model.parameters(), None)
    if first is None or not trainable:
        return []
    ids, mask = _probe_inputs(model, first.device)
    bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
    was_training, kept = model.training, [p.grad for _, p in trainable]
    model.eval()
    try:
        for _, p in trainable:
            p.grad = None
        with torch.autocast(first.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=ids, attention_mask=mask)
        logits = out.logits if hasattr(out, "logits") else _hidden_of(out)
        logits.float().sum().backward()
        return [name for name, p in trainable if p.grad is None]
    except Exception:  # noqa: BLE001 - a model that cannot take the probe's pass: let DDP look every step
        return None
    finally:
        for (_, p), grad in zip(trainable, kept):
            p.grad = grad
        model.train(was_training)


def _hidden_of(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


class _Recorder:
    """The hooks of one probe pass and what they saw."""

    def __init__(self, body: nn.Module, blocks: nn.ModuleList):
        self.tick = itertools.count()
        self.starts: dict[str, int] = {}
        self.called: dict[str, tuple[int, int]] = {}
        self.outputs: dict[str, Any] = {}
        self.seen: dict[str, Any] = {}
        self.linear_calls: list[tuple[str, torch.Tensor]] = []
        self.handles: list[Any] = []
        blocks_name = next(n for n, m in body.named_modules() if m is blocks)
        for name, module in body.named_modules():
            if name and name != blocks_name and not name.startswith(f"{blocks_name}."):
                self.handles.append(module.register_forward_pre_hook(self._pre(name)))
                self.handles.append(module.register_forward_hook(self._post(name)))
        for name, module in blocks[0].named_modules():
            if is_linear(module):  # the input tensor itself is kept, so no id is reused while probing
                self.handles.append(module.register_forward_pre_hook(self._linear(name)))
        self.handles.append(blocks[0].register_forward_pre_hook(self._first_block, with_kwargs=True))
        self.handles.append(blocks[-1].register_forward_pre_hook(self._last_block_in, with_kwargs=True))
        self.handles.append(blocks[-1].register_forward_hook(self._last_block_out))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _pre(self, name):
        def hook(module, args):
            self.starts.setdefault(name, next(self.tick))

        return hook

    def _post(self, name):
        def hook(module, args, out):
            if name not in self.called:
                self.called[name] = (self.starts[name], next(self.tick))
                self.outputs[name] = out

        return hook

    def _linear(self, name):
        def hook(module, args):
            if args and all(name != n for n, _ in self.linear_calls):
                self.linear_calls.append((name, args[0]))

        return hook

    def _first_block(self, module, args, kwargs):
        self.seen["first_runs"] = self.seen.get("first_runs", 0) + 1
        self.seen.setdefault("first_start", next(self.tick))
        if "x0" in self.seen:
            return
        if args and torch.is_tensor(args[0]):
            self.seen["block_input"], self.seen["x0"] = ("arg", 0), args[0]
        else:
            key = "hidden_states" if "hidden_states" in kwargs else next(k for k, v in kwargs.items() if torch.is_tensor(v))
            self.seen["block_input"], self.seen["x0"] = ("kwarg", key), kwargs[key]

    def _last_block_in(self, module, args, kwargs):
        kind, key = self.seen["block_input"]
        self.seen["x_last"] = (args[key] if kind == "arg" else kwargs[key]).detach()

    def _last_block_out(self, module, args, out):
        self.seen["last_end"] = next(self.tick)
        self.seen["block_output"] = len(out) if isinstance(out, (tuple, list)) else None
        hidden = _hidden_of(out)
        self.seen["y_last"] = hidden.detach()
        # a fresh leaf in place of the last block's output: d logits / d leaf shows the positions the head reads
        leaf = hidden.detach().clone().requires_grad_(True)
        self.seen["leaf"] = leaf
        torch.set_grad_enabled(True)  # only what runs after the last block records a graph (probe_model's no_grad ends it)
        return (leaf, *out[1:]) if isinstance(out, (tuple, list)) else leaf


def probe_model(model: nn.Module, body: nn.Module, body_path: str, blocks: nn.ModuleList) -> Probe:
    """Run ``model`` once in eval mode with recording hooks; the model is left exactly as it was."""
    rec = _Recorder(body, blocks)
    was_training = model.training
    model.eval()
    input_ids, mask = _probe_inputs(model, next(model.parameters()).device)
    try:
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits
        x0 = rec.seen.get("x0")
        if torch.is_tensor(x0) and x0.dim() == 3 and x0.shape[0] != input_ids.shape[0]:  # (Longformer pads the length)
            raise ValueError(f"its blocks take hidden states shaped {tuple(x0.shape)} for a batch of {tuple(input_ids.shape)} "
                             "tokens, not (batch, sequence, hidden) (a sequence-first body such as XLNet's); tunelab "
                             "supports batch-first blocks")
        head_reads = "all"
        if logits.dim() == 2 and logits.requires_grad:  # one row per example: a sequence classifier reads some positions
            (grad,) = torch.autograd.grad(logits.float().sum(), rec.seen["leaf"], allow_unused=True)
            head_reads = _positions_read(grad, mask)
    finally:
        rec.remove()
        model.train(was_training)
    seen, prefix = rec.seen, f"{body_path}." if body_path else ""
    if "x0" not in seen or "last_end" not in seen:  # e.g. blocks nested in groups (Funnel) or shared (called elsewhere)
        raise ValueError("the modules taken for its blocks did not run, first to last, in a forward pass, so their wiring "
                         "cannot be read; tunelab supports bodies that run one list of transformer blocks in order")
    entry = None
    for name, out in sorted(rec.outputs.items(), key=lambda kv: rec.called[kv[0]][1]):
        if _hidden_of(out) is seen["x0"] and rec.called[name][1] < seen["first_start"]:
            entry = prefix + name  # the last module to finish whose output enters block 0 unchanged
    return Probe(
        hidden_size=int(seen["x0"].shape[-1]),
        block_input=seen["block_input"],
        block_output=seen["block_output"],
        entry=entry,
        called={prefix + n: t for n, t in rec.called.items()},
        blocks_span=(seen["first_start"], seen["last_end"]),
        linear_order=[n for n, _ in rec.linear_calls],
        first_group=[n for n, x in rec.linear_calls if x is rec.linear_calls[0][1]],
        ranks={prefix + n: _hidden_of(o).dim() for n, o in rec.outputs.items() if torch.is_tensor(_hidden_of(o))},
        head_reads=head_reads,
        block_runs=int(seen.get("first_runs", 1)),
        last_block_io=(seen["x_last"], seen["y_last"]),
        mask=mask,
    )


def _positions_read(grad: torch.Tensor | None, mask: torch.Tensor) -> str:
    """"first", "last" (the last non-padding token of each row) or "all", from d logits / d hidden."""
    if grad is None:
        return "all"
    used = grad.abs().sum(-1) > 0  # (rows, positions)
    lengths = mask.sum(-1)
    first = torch.zeros_like(used)
    first[:, 0] = True
    last = torch.zeros_like(used)
    last[torch.arange(used.shape[0]), lengths - 1] = True
    if torch.equal(used, first):
        return "first"
    if torch.equal(used, last):
        return "last"
    return "all"


def separates_documents(model: nn.Module) -> bool:
    """Whether ``model`` keeps texts packed into one row apart when given ``position_ids`` that restart at 0 at each
    text's start and no attention mask: transformers' packed-sequence masks (``masking_utils.create_causal_mask``,
    for sdpa, eager and flex attention; varlen flash attention), which also give each text its own positions (rotary
    or learned). Checked, not assumed from the architecture: on the probe's tokens as two texts, the second text's
    logits must equal its logits alone. A model whose attention builds its own mask, or a wrapper that drops the
    position ids (peft's soft prompts), fails the check and packs as before."""
    first = next(model.parameters(), None)
    if first is None:
        return False
    ids, _ = _probe_inputs(model, first.device)
    ids = ids[:1]
    cut = 2
    packed = torch.cat([torch.arange(cut), torch.arange(ids.shape[1] - cut)]).to(first.device)[None]
    alone = torch.arange(ids.shape[1] - cut, device=first.device)[None]
    bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(first.device.type, dtype=torch.bfloat16, enabled=bf16):
            both = model(input_ids=ids, position_ids=packed, use_cache=False).logits[0, cut:].float()
            own = model(input_ids=ids[:, cut:], position_ids=alone, use_cache=False).logits[0].float()
    except Exception:  # noqa: BLE001 - a model that cannot take position ids packs as before
        return False
    finally:
        model.train(was_training)
    tol = dict(rtol=1e-2, atol=1e-2) if bf16 else dict(rtol=1e-4, atol=1e-4)
    return both.shape == own.shape and torch.allclose(both, own, **tol)
