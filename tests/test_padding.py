"""A random batch trained as micro-batches of similar length (tunelab.run.padding): same gradient, fewer pad tokens."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_DIMS
from tunelab.run.padding import split_by_padding


def _batch(lengths: list[int], *, vocab: int = 100, left: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        if left:
            mask[row, width - n :] = 1
        else:
            mask[row, :n] = 1
    ids = torch.randint(5, vocab, (len(lengths), width), generator=gen) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.randint(0, 2, (len(lengths),), generator=gen),
            "length": mask.sum(1)}  # fmt: skip  # the column group_by_length reads: train()'s batches carry it


# a random batch of 32 short reviews: most near 20 tokens, a few long ones set the padding of all
MIXED = [12, 14, 15, 16, 17, 18, 18, 19, 20, 20, 21, 22, 22, 23, 24, 25, 26, 27, 28, 30, 31, 33, 35, 37, 40, 42, 45, 48, 52, 56, 60, 64]


def test_a_batch_of_mixed_lengths_is_cut_into_sorted_micro_batches_that_keep_every_row_once():
    inputs = _batch(MIXED[::-1])  # rows in any order
    parts = split_by_padding(inputs)
    assert parts is not None and len(parts) in (2, 4)
    assert sum(share for _, share in parts) == pytest.approx(1.0)
    rows = [tuple(r.tolist()) for part, _ in parts for r in part["input_ids"][:, :1]]
    assert sorted(rows) == sorted(tuple(r.tolist()) for r in inputs["input_ids"][:, :1])
    padded = sum(part["input_ids"].numel() for part, _ in parts)
    assert padded < 0.75 * inputs["input_ids"].numel()
    for part, _ in parts:  # each micro-batch is padded to its own longest text, and the labels follow their rows
        assert int(part["attention_mask"].sum(1).max()) == part["input_ids"].shape[1]
        assert set(part) == set(inputs) and part["labels"].shape[0] == part["input_ids"].shape[0]


@pytest.mark.parametrize(
    "case",
    ["same length", "too few rows", "left padding", "per-token labels", "per-row matrix"],
)
def test_a_batch_is_left_whole_where_cutting_would_save_little_or_change_what_the_model_computes(case):
    inputs = _batch([60] * 32 if case == "same length" else MIXED[:12] if case == "too few rows" else MIXED, left=case == "left padding")
    if case == "per-token labels":
        inputs["labels"] = inputs["input_ids"].clone()
    if case == "per-row matrix":  # neither one value per row nor one per position: what it means is unknown
        inputs["scores"] = torch.zeros(32, 3)
    assert split_by_padding(inputs) is None


def test_hidden_states_fed_in_place_of_tokens_are_cut_with_the_rows_and_positions():
    """The frozen-layer cache feeds ``(rows, positions, hidden)`` states beside the tokens (CachedCollator): they are cut
    as the tokens are, row for row, to each micro-batch's own longest text."""
    inputs = _batch(MIXED[::-1])
    inputs["cached_hidden"] = inputs["input_ids"][..., None].float().expand(-1, -1, 4).clone()  # each position's id
    parts = split_by_padding(inputs)
    assert parts is not None and len(parts) >= 2
    for part, _ in parts:
        assert part["cached_hidden"].shape == (*part["input_ids"].shape, 4)
        torch.testing.assert_close(part["cached_hidden"][..., 0], part["input_ids"].float())
    inputs["cached_hidden"] = torch.zeros(32, 7, 4)  # not the mask's positions
    assert split_by_padding(inputs) is None


def _tiny_classifier():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, max_position_embeddings=128, num_labels=2, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, **TINY_DIMS)  # fmt: skip
    return BertForSequenceClassification(config)


@pytest.mark.parametrize("cut_by", ["padding", "token cap"])
def test_the_micro_batches_give_the_whole_batch_s_loss_and_gradient_through_the_trainer(tmp_path, cut_by):
    """TunelabTrainer.training_step on a batch it cuts (to save padding, or to keep under --micro-batch-tokens): the
    same loss and gradients as one backward of the whole batch (no dropout in the tiny model, so the two differ only
    by float rounding)."""
    from transformers import TrainingArguments

    from tunelab.run.training import make_trainer_class

    inputs = _batch(MIXED if cut_by == "padding" else [30] * 32, seed=1)
    cap = None if cut_by == "padding" else 256
    assert (split_by_padding(inputs) is not None) == (cut_by == "padding")
    model = _tiny_classifier()
    whole = model(**inputs).loss
    whole.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=32, report_to=[], use_cpu=True)
    trainer = make_trainer_class()(model=model, args=args)
    trainer.current_gradient_accumulation_steps = 1  # train()'s loop sets it before each step
    trainer.tunelab_micro_tokens = cap  # TrainerSetup.trainer sets it from --micro-batch-tokens
    calls = []
    model.register_forward_hook(lambda module, a, out: calls.append(out.logits.shape[0]))
    loss = trainer.training_step(model, inputs)
    assert len(calls) >= 2 and sum(calls) == 32  # it did cut the batch, and trained every row once
    assert cap is None or calls == [8, 8, 8, 8]  # 8 rows x 30 tokens: the largest cut under 256 tokens
    assert float(loss) == pytest.approx(float(whole.detach()), rel=1e-5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def _lm_batch(lengths: list[int], seed: int = 2) -> dict[str, torch.Tensor]:
    """A causal LM's batch as DataCollatorForLanguageModeling makes it: labels are the ids, -100 where a row is
    padding."""
    inputs = _batch(lengths, seed=seed)
    inputs["labels"] = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    del inputs["token_type_ids"]
    return inputs


def test_a_causal_lm_batch_is_cut_with_its_labels_and_weighted_by_its_next_token_targets():
    inputs = _lm_batch(MIXED[::-1])
    parts = split_by_padding(inputs)
    assert parts is not None and sum(share for _, share in parts) == pytest.approx(1.0)
    total = int((inputs["labels"][:, 1:] != -100).sum())
    for part, share in parts:  # the labels are cut along the sequence with the tokens; a long row weighs more
        assert part["labels"].shape == part["input_ids"].shape
        assert share == pytest.approx(int((part["labels"][:, 1:] != -100).sum()) / total)
    assert parts[0][1] < parts[-1][1]  # sorted by length: the short rows' micro-batch holds fewer targets


@pytest.mark.parametrize("cut_by", ["padding", "token cap"])
def test_a_causal_lm_s_micro_batches_give_the_whole_batch_s_loss_and_gradient(tmp_path, cut_by):
    """The same check on a decoder: a batch of mixed lengths (cut to save padding), and packed blocks of one length
    over the token cap (the batch of 32 x 64 tokens a causal-LM run trains on, here 32 x 16 under a cap of 256): the
    loss is the mean over every next-token target of the batch, so each micro-batch weighs by its share of them."""
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

    from tunelab.run.training import make_trainer_class

    inputs = _lm_batch(MIXED if cut_by == "padding" else [16] * 32)
    cap = None if cut_by == "padding" else 256
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=100, max_position_embeddings=128, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64))
    whole = model(**{k: v for k, v in inputs.items() if k != "length"}).loss
    whole.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=32, report_to=[], use_cpu=True,
                             remove_unused_columns=False)
    trainer = make_trainer_class()(model=model, args=args)
    trainer.current_gradient_accumulation_steps = 1
    trainer.tunelab_micro_tokens = cap
    calls = []
    model.register_forward_hook(lambda module, a, out: calls.append(out.logits.shape[0]))
    loss = trainer.training_step(model, {k: v for k, v in inputs.items() if k != "length"})
    assert len(calls) >= 2 and sum(calls) == 32
    assert cap is None or calls == [16, 16]  # 16 rows x 16 tokens: at the cap
    assert float(loss) == pytest.approx(float(whole.detach()), rel=1e-5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_micro_batches_under_gradient_accumulation_give_the_trainer_s_own_loss_and_gradient(tmp_path, arch):
    """Two batches accumulated into one step (as after an out-of-memory retry halved the batch), each over the token
    cap: cut into micro-batches, the same loss and gradients as the Trainer's own accumulation of the whole batches,
    whose loss a causal LM scales by the targets of both batches (``num_items_in_batch``), a classifier by the steps;
    and both are the mean over every target of the step, as the two batches' losses weighted by their targets give it."""
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

    from tunelab.run.training import loss_over_step_targets, make_trainer_class

    if arch == "bert":
        model, batches = _tiny_classifier(), [_batch([30] * 16, seed=1), _batch([20] * 16, seed=2)]
    else:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=100, max_position_embeddings=128, hidden_size=32,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             intermediate_size=64))
        batches = [_lm_batch(lengths, seed=seed) for lengths, seed in (([16] * 16, 1), ([12, 16] * 8, 2))]
    batches = [{k: v for k, v in b.items() if k != "length"} for b in batches]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, gradient_accumulation_steps=2,
                             report_to=[], use_cpu=True, remove_unused_columns=False)
    trainer = make_trainer_class()(model=model, args=args)
    if not loss_over_step_targets("classification" if arch == "bert" else "causal-lm"):
        trainer.model_accepts_loss_kwargs = False  # as TrainerSetup.trainer tells it
    trainer.current_gradient_accumulation_steps = 2
    items = trainer._get_num_items_in_batch(batches, torch.device("cpu"))  # as train()'s loop counts them
    assert (items is None) == (arch == "bert")  # a classifier's loss is its batch's mean, whatever the step holds
    targets = [b["labels"].shape[0] if arch == "bert" else int((b["labels"][:, 1:] != -100).sum()) for b in batches]
    expected = sum(model(**b).loss * n / sum(targets) for b, n in zip(batches, targets))
    expected.backward()
    reference = float(expected.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    calls = []
    model.register_forward_hook(lambda module, a, out: calls.append(out.logits.shape[0]))
    results = {}
    for cap in (None, 128):
        trainer.tunelab_micro_tokens = cap
        calls.clear()
        loss = sum(float(trainer.training_step(model, dict(b), items)) for b in batches)
        results[cap] = loss, {n: p.grad.clone() for n, p in model.named_parameters()}, list(calls)
        model.zero_grad(set_to_none=True)
    assert results[None][2] == [16, 16] and results[128][2] == [8, 8, 8, 8]  # whole, then cut under the cap
    for cap in (None, 128):
        assert results[cap][0] == pytest.approx(reference[0], rel=1e-5)
        for name, grad in reference[1].items():
            torch.testing.assert_close(results[cap][1][name], grad, rtol=1e-4, atol=1e-6, msg=f"{cap}: {name}")


# ----------------------------------------------------------------------------- on an accelerator: padded to a multiple


def test_on_an_accelerator_batches_are_padded_to_a_multiple_that_divides_max_length(monkeypatch):
    from tunelab.run.padding import pad_multiple, padded_length

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pad_multiple(128) is None and padded_length(13, 128) == 13  # a CPU pays for every pad token
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pad_multiple(128) == 8 and padded_length(13, 128) == 16 and padded_length(16, 128) == 16
    assert pad_multiple(100) == 4 and padded_length(98, 100) == 100  # never past max_length (the position table's end)
    assert pad_multiple(509) is None and padded_length(508, 509) == 508
    assert pad_multiple(None) is None


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_padding_to_a_multiple_changes_no_output_of_the_model(arch, tiny_bert_dir, tiny_llama_dir, monkeypatch):
    """The collator a run trains with (tunelab.run.padding.task_collator) pads to the multiple on an accelerator; the
    extra pad tokens are masked, so the loss and every real row's logits are those of the batch padded to its longest."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.run.padding import task_collator

    folder = tiny_bert_dir if arch == "bert" else tiny_llama_dir
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, pad_token_id=tokenizer.pad_token_id).eval()
    texts = ["good", "a rather long and slow but good film", "bad film"]
    rows = [dict(tokenizer(t), labels=i % 2) for i, t in enumerate(texts)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # padded to the longest, as on a CPU
    longest = task_collator(tokenizer, "classification", 64)(rows)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the collator as a GPU run builds it (the model stays here)
    padded = task_collator(tokenizer, "classification", 64)(rows)
    assert padded["input_ids"].shape[1] % 8 == 0 and padded["input_ids"].shape[1] > longest["input_ids"].shape[1]
    with torch.no_grad():
        a, b = model(**longest), model(**padded)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.loss, a.loss, rtol=1e-5, atol=1e-5)


def test_one_pass_attention_leaves_out_cudnn_on_an_accelerator_only(monkeypatch):
    """Passes over batches of ever-changing shape exclude cuDNN's attention on a GPU (a plan per shape there); the
    fused and math kernels stay; on a CPU nothing changes; the choice ends with the pass."""
    from tunelab.run.padding import one_pass_attention

    cuda = torch.backends.cuda
    before = (cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(), cuda.math_sdp_enabled())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with one_pass_attention():
        assert cuda.cudnn_sdp_enabled() == before[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with one_pass_attention():
        assert not cuda.cudnn_sdp_enabled()
        assert cuda.flash_sdp_enabled() and cuda.mem_efficient_sdp_enabled() and cuda.math_sdp_enabled()
    assert (cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(), cuda.math_sdp_enabled()) == before


def test_the_cache_build_evaluate_predict_and_the_advice_run_their_passes_under_it(tiny_bert_dir, toy_classification_data, tmp_path,
                                                                       monkeypatch):
    import contextlib

    import tunelab.run.padding as padding
    from tunelab.config import TrainConfig
    from tunelab.run.artifacts import predict
    from tunelab.run.evaluation import evaluate_artifact
    from tunelab.run.training import train

    entered: list[str] = []

    @contextlib.contextmanager
    def recorder():
        import inspect

        entered.append(inspect.stack()[2].function)  # the function that asked for it
        yield

    monkeypatch.setattr(padding, "one_pass_attention", recorder)
    out = tmp_path / "run"
    train(TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=8, lr=0.05, out=str(out),
                      cache_dir=str(tmp_path / "cache"), forgetting=False), data=toy_classification_data, progress=False)
    assert "_fill" in entered, entered
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in [("a good film", "pos"), ("a bad film", "neg")] * 3))
    before = len(entered)
    evaluate_artifact(out, str(data), split="all")
    predict(out, ["a good film"])
    assert entered[before:] == ["_evaluate", "predict"], entered  # evaluate_artifact's pass, inside its bars-off block
    from tunelab.advice.features import frozen_features

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "tunelab-cache"))  # nothing stored yet: the pass runs
    frozen_features(str(tiny_bert_dir), ["a good film", "a bad film"], ["neg", "pos"])
    assert entered[-1] == "_features_of", entered


def test_a_batch_over_the_token_cap_is_cut_until_no_micro_batch_holds_more_tokens_than_the_cap():
    inputs = _batch([60] * 32)  # one length: cutting saves no padding, so only the cap cuts it
    assert split_by_padding(inputs) is None
    parts = split_by_padding(inputs, max_tokens=1024)
    assert parts is not None and [part["input_ids"].shape for part, _ in parts] == [(16, 60), (16, 60)]
    assert sum(share for _, share in parts) == pytest.approx(1.0)
    assert len(split_by_padding(inputs, max_tokens=480)) == 4  # 8 rows x 60 tokens each
    assert len(split_by_padding(inputs, max_tokens=100)) == 4  # never below 8 rows a micro-batch
    assert split_by_padding(inputs, max_tokens=32 * 60) is None  # within the cap: left whole


def test_the_token_cap_cuts_a_batch_that_padding_alone_leaves_whole():
    inputs = _batch(list(range(33, 65)))  # 33..64 tokens: halving saves 12 % of the padding, under MIN_SAVING
    assert split_by_padding(inputs) is None
    assert [part["input_ids"].shape for part, _ in split_by_padding(inputs, max_tokens=1024)] == [(16, 48), (16, 64)]
    assert [part["input_ids"].shape for part, _ in split_by_padding(inputs, max_tokens=600)] == [(8, 40), (8, 48), (8, 56), (8, 64)]


def test_a_left_padded_causal_lm_batch_has_the_targets_of_a_right_padded_one(tiny_llama_dir):
    """A decoder whose tokenizer pads on the left (as many are saved, for generation): a padded block's first token
    is no target (nothing before it in the block predicts it), but on the left of it stood padding, so its label was
    shifted onto the last pad position, and the loss had one target more per padded row, predicted from padding. The
    same blocks now give the same loss padded either way."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.run.padding import task_collator

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    features = [{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [5, 6, 7, 8, 9, 10]},
                {"input_ids": [11, 12, 13], "labels": [11, 12, 13]}]
    losses = {}
    for side in ("right", "left"):
        tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
        tokenizer.padding_side = side
        batch = task_collator(tokenizer, "causal-lm", 32)([dict(f) for f in features])
        targets = (batch["labels"] != -100) & (batch["attention_mask"] != 0)
        assert int(targets[:, 1:].sum()) == 5 + 2, side  # the tokens after each block's first
        with torch.no_grad():
            losses[side] = model(**batch).loss
    torch.testing.assert_close(losses["left"], losses["right"], rtol=1e-5, atol=1e-5)
