"""The one training path: the run record, its numbers, data limits, tokenization and guards (tiny models)."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch

from tunelab.config import TrainConfig
from tunelab.errors import ConfigError
from tunelab.metrics import IGNORE_INDEX
from tunelab.run.outputs import ExampleOutputs
from tunelab.run.training import load_data, resolve_max_length, tokenize, train


@pytest.fixture(scope="module")
def head_record(tiny_bert_dir, toy_classification_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "head"
    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=2, batch_size=8, lr=0.05, out=str(out))
    return train(config, data=toy_classification_data, progress=False), out


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resetting the peak RSS needs Linux's /proc")
def test_a_second_run_in_one_process_reports_its_own_peak_memory(tiny_bert_dir, toy_classification_data, tmp_path):
    """train() called again in one process (a notebook, compare(isolate=False)): its peak memory is the run's own, not
    the process's since it started, which held 2 GiB between the two runs."""
    import numpy as np

    from tunelab.run.heap import peak_rss_mb

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=8, lr=0.05)
    train(config.replace(out=str(tmp_path / "a")), data=toy_classification_data, progress=False)
    held = np.ones(2 * 2**30 // 8)  # written, so resident
    held = None  # noqa: F841 - released: the process's peak keeps it
    before = peak_rss_mb()
    record = train(config.replace(out=str(tmp_path / "b")), data=toy_classification_data, progress=False)
    assert record["train_info"]["memory_kind"] == "rss"
    assert record["train_info"]["peak_memory_mb"] < before - 1500, (record["train_info"]["peak_memory_mb"], before)
    assert not any("earlier runs" in note for note in record["train_info"]["notes"] or [])


def test_record_has_the_documented_parts_and_is_what_metrics_json_holds(head_record, toy_classification_data):
    record, out = head_record
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(record, default=str))
    assert set(record) >= {"run_info", "train_info", "metrics", "meta_info", "config", "artifact"}
    run, info, meta = record["run_info"], record["train_info"], record["meta_info"]
    assert run["status"] == "success" and run["error"] is None and run["strategy"] == "head"
    assert meta["task"] == "classification" and meta["label_names"] == ["neg", "pos"]
    assert (meta["n_train"], meta["n_validation"], meta["n_test"]) == (48, 16, 16)
    assert meta["data_fingerprint"] == toy_classification_data.fingerprint
    assert {"torch", "transformers", "peft", "tunelab"} <= set(meta["versions"])
    assert info["trainable_share"] == pytest.approx(info["trainable_params"] / info["total_params"])
    assert info["train_time_s"] > 0 and info["eval_time_s"] > 0 and info["peak_memory_mb"] > 0
    assert info["train_time_s"] + info["eval_time_s"] <= run["wall_time_s"]
    assert info["learning_rate"] == 0.05 and info["max_length"] == 128
    for split in ("validation", "test"):
        assert set(record["metrics"][split]) == {"accuracy", "f1_macro", "loss"}
        assert 0 <= record["metrics"][split]["accuracy"] <= 1


SLEEP = 2.0


@pytest.mark.parametrize("screening", [True, False])
def test_training_time_leaves_out_only_the_evaluations_it_contains(screening, tiny_bert_dir, toy_classification_data,
                                                                    tmp_path, monkeypatch):
    """Each evaluation takes two seconds longer here. The training time is the loop minus the evaluations inside it
    (one per epoch), not minus every evaluation of the run: the test split's, and a screening run's only one, come
    after the loop (subtracting them made these runs' training time negative)."""
    import time

    import torch
    from transformers import Trainer

    evaluate = Trainer.evaluate

    def slow(self, *args, **kwargs):
        time.sleep(SLEEP)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", slow)
    if torch.cuda.is_available():  # CUDA's start (seconds with many test processes on one GPU) is not measured here
        (torch.ones(8, 8, device="cuda") @ torch.ones(8, 8, device="cuda")).sum().item()
    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=2, batch_size=8, lr=0.05, out=str(tmp_path),
                         screening=screening, cache=False, forgetting=False)
    record = train(config, data=toy_classification_data, progress=False)
    info = record["train_info"]
    evaluations = 1 if screening else 3  # validation once after the loop; or after each epoch, and the test split
    assert info["eval_time_s"] >= evaluations * SLEEP
    # 12 steps of a tiny model (1.2-1.4 s on a GPU shared by 14 test workers, CUDA's start included); none of the sleeps
    assert 0 < info["train_time_s"] < SLEEP
    assert info["train_time_s"] + info["eval_time_s"] <= record["run_info"]["wall_time_s"]


@pytest.mark.parametrize("screening", [True, False])
def test_a_screening_run_writes_no_checkpoint_at_its_last_step(screening, tiny_bert_dir, toy_classification_data,
                                                                 tmp_path, monkeypatch):
    """The checkpoint at the last step guards the evaluation and the model's save after training. A screening run
    saves no model and trains again more cheaply than it writes that checkpoint: it is left out there, and only there.
    A checkpoint before the last step (``save_steps``) is still written."""
    from tunelab.run import resilience

    saved: list[int] = []
    real = resilience.save_checkpoint_atomically

    def counting(trainer, save):
        saved.append(trainer.state.global_step)
        return real(trainer, save)

    monkeypatch.setattr(resilience, "save_checkpoint_atomically", counting)
    config = TrainConfig(model=str(tiny_bert_dir), strategy="full", epochs=2, batch_size=8, save_steps=4,
                         out=str(tmp_path), screening=screening, cache=False, forgetting=False)
    record = train(config, data=toy_classification_data, progress=False)
    assert record["run_info"]["status"] == "success"
    assert saved == ([4, 8] if screening else [4, 8, 12])  # 48 training rows, batch 8, 2 epochs: 12 steps
    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))  # removed once the run succeeded, either way


def test_epoch_history_ends_with_the_final_validation_metrics(head_record):
    record, _ = head_record
    epochs = record["train_info"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all("train_loss" in e and "val_accuracy" in e for e in epochs)
    final = record["metrics"]["validation"]
    assert epochs[-1]["val_accuracy"] == pytest.approx(final["accuracy"])
    assert epochs[-1]["val_loss"] == pytest.approx(final["loss"], abs=1e-6)


def test_many_short_epochs_are_evaluated_every_few_epochs(tiny_bert_dir, toy_classification_data, tmp_path):
    from tunelab.run.training import MAX_EVALUATIONS

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=12, batch_size=16, lr=0.05, out=str(tmp_path / "r"))
    record = train(config, data=toy_classification_data, progress=False)
    evaluated = [e["epoch"] for e in record["train_info"]["epochs"] if "val_accuracy" in e]
    assert evaluated == [2, 4, 6, 8, 10, 12] and len(evaluated) <= MAX_EVALUATIONS  # 48 rows: 3 steps an epoch
    assert record["train_info"]["epochs"][-1]["val_accuracy"] == pytest.approx(record["metrics"]["validation"]["accuracy"])


def test_without_epochs_small_data_trains_whole_epochs_of_at_least_60_steps(tiny_bert_dir, toy_classification_data,
                                                                            tmp_path):
    from tunelab.config import MIN_STEPS

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", batch_size=16, lr=0.05, out=str(tmp_path / "r"))
    record = train(config, data=toy_classification_data, progress=False)
    info = record["train_info"]
    assert info["num_epochs"] == 20  # 48 rows at batch 16: 3 steps an epoch, so 20 epochs make 60 steps
    assert max(e["epoch"] for e in info["epochs"]) == 20 and 20 * 3 >= MIN_STEPS
    assert record["config"]["epochs"] is None  # the record keeps what was asked; num_epochs what ran
    given = train(config.replace(epochs=2, out=str(tmp_path / "given")), data=toy_classification_data, progress=False)
    assert given["train_info"]["num_epochs"] == 2  # --epochs is taken as given


def test_epochs_for_keeps_three_epochs_where_they_make_enough_steps():
    assert TrainConfig().epochs_for(2000) == 3  # 63 steps an epoch at batch 32
    assert TrainConfig().epochs_for(300) == 6  # 10 steps an epoch
    assert TrainConfig(gradient_accumulation_steps=2).epochs_for(300) == 12  # 5 optimizer steps an epoch
    assert TrainConfig().epochs_for(300, processes=2) == 12
    assert TrainConfig().epochs_for(None) == 3  # size unknown
    assert TrainConfig(epochs=0.5).epochs_for(10) == 0.5


def test_a_comparison_fixes_the_epochs_once_for_its_largest_run(tmp_path):
    from tunelab.compare.runner import CompareOptions, Sized, _checked_inputs, _epochs_fixed

    rows = "\n".join(f"text number {i} here,{i % 2}" for i in range(100))
    (tmp_path / "d.csv").write_text("text,label\n" + rows + "\n")
    said: list[str] = []
    base = TrainConfig(data=str(tmp_path / "d.csv"), batch_size=8)
    sized = _checked_inputs(base)
    assert sized == Sized("classification", 70, 1.0, 10, sized.split_fingerprint) and len(sized.split_fingerprint) > 8
    fixed = _epochs_fixed(base, CompareOptions(data_fractions=[0.25, 1.0]), said.append, sized)
    assert fixed.epochs == 7  # 70 training rows (10 % validation, 20 % test): 9 steps an epoch, 7 epochs for 60
    assert said and "at least 60 optimizer steps" in said[0]
    assert _epochs_fixed(base.replace(epochs=2), CompareOptions(), said.append, sized).epochs == 2


def test_a_causal_lm_comparison_counts_its_steps_in_packed_blocks(tiny_llama_dir, tmp_path):
    """Long documents pack into many blocks: their epochs come from the blocks a step's batch takes, not from the
    texts (40 texts of ~40 blocks each are 50 steps an epoch at batch 32: 3 epochs, not the 30 that 40 examples of
    2 steps an epoch would take)."""
    from tunelab.compare.runner import CompareOptions, _checked_inputs, _epochs_fixed

    paragraphs = [f"paragraph {i}: " + " ".join(["the film was really good and the plot was quite funny"] * 10)
                  for i in range(60)]
    (tmp_path / "doc.txt").write_text("\n\n".join(paragraphs))  # ~36 k characters: chunks of 1-2 k
    said: list[str] = []
    base = TrainConfig(model=str(tiny_llama_dir), data=str(tmp_path / "doc.txt"), max_length=16)
    sized = _checked_inputs(base)
    assert sized.task == "causal-lm" and sized.sequences_per_example > 10
    steps = base.steps_per_epoch(round(sized.n_split * sized.sequences_per_example))
    fixed = _epochs_fixed(base, CompareOptions(), said.append, sized)
    assert fixed.epochs == base.epochs_for(round(sized.n_split * sized.sequences_per_example)) == max(3, -(-60 // steps))
    assert fixed.epochs < base.epochs_for(sized.n_split)


def test_per_example_outputs_are_saved_and_give_back_the_recorded_metrics(head_record):
    record, out = head_record
    for split in ("validation", "test"):
        outputs = ExampleOutputs.load(out, split)
        assert outputs is not None and len(outputs) == record["meta_info"][f"n_{split}"]
        assert outputs.label_names == ["neg", "pos"]
        for metric, value in outputs.metrics().items():
            assert value == pytest.approx(record["metrics"][split][metric], abs=1e-12), (split, metric)


def test_training_learns_the_toy_task(tiny_llama_dir, toy_classification_data, tmp_path):
    # sentiment words decide the label: fine-tuning must beat chance clearly on held-out rows
    config = TrainConfig(model=str(tiny_llama_dir), strategy="full", lr=1e-3, epochs=4, batch_size=8, out=str(tmp_path / "o"))
    record = train(config, data=toy_classification_data, progress=False)
    losses = [e["train_loss"] for e in record["train_info"]["epochs"]]
    assert losses[-1] < losses[0] - 0.1
    assert record["metrics"]["test"]["accuracy"] >= 0.75


def test_causal_lm_reports_perplexity_as_exp_loss(tiny_llama_dir, toy_lm_data, tmp_path):
    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora", epochs=1, batch_size=8, max_length=16, out=str(tmp_path / "o"))
    record = train(config, data=toy_lm_data, progress=False)
    for split in ("validation", "test"):
        m = record["metrics"][split]
        assert set(m) == {"loss", "perplexity"}
        assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    assert record["meta_info"]["label_names"] == []
    assert record["artifact"]["format"] == "peft"
    for split in ("validation", "test"):
        outputs = ExampleOutputs.load(tmp_path / "o", split)
        assert outputs is not None and outputs.task == "causal-lm" and outputs.token_counts.min() > 0
        # every block holds 16 tokens (15 predicted): the token-weighted loss is the Trainer's sample mean
        assert outputs.metrics()["loss"] == pytest.approx(record["metrics"][split]["loss"], rel=1e-4)
    # the artifact scored on a held-out text file, every row of it (--split all): blocks of the trained length
    from tunelab.run.evaluation import evaluate_artifact

    (tmp_path / "held.txt").write_text("\n\n".join(toy_lm_data.test["text"]))
    scored = evaluate_artifact(tmp_path / "o", str(tmp_path / "held.txt"), split="all")
    assert scored["split"] == "all" and scored["examples"] > 0 and math.isfinite(scored["perplexity"])
    # examples are texts, as a comparison counts them (they were the blocks); the blocks and targets are said apart
    from tunelab.data import load_task_data

    texts = len(load_task_data(str(tmp_path / "held.txt"), task="causal-lm", split=False).train)
    assert scored["examples"] == texts and scored["blocks"] > scored["examples"]
    assert scored["target_tokens"] > scored["blocks"]


def test_max_length_beyond_the_model_is_refused_and_defaults_are_capped(tiny_bert_dir):
    from transformers import AutoConfig, AutoTokenizer

    model_config = AutoConfig.from_pretrained(tiny_bert_dir)  # 128 positions
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert resolve_max_length(TrainConfig(), "classification", model_config, tokenizer) == 128
    assert resolve_max_length(TrainConfig(), "causal-lm", model_config, tokenizer) == 128  # default 256, capped
    assert resolve_max_length(TrainConfig(max_length=32), "classification", model_config, tokenizer) == 32
    with pytest.raises(ConfigError, match="--max-length 512 .* at most 128"):
        resolve_max_length(TrainConfig(max_length=512), "classification", model_config, tokenizer)


def test_a_gpt2_causal_lm_reports_the_loss_of_its_predicted_tokens(toy_lm_data, tmp_path):
    """GPT-2's class name maps to no loss in transformers (loss_type None): the Trainer then divided every block's summed
    loss by all its labels, not the predicted ones, and reported a perplexity far below the model's. The recorded loss
    is the token-weighted loss of the per-example outputs and of the saved model, scored by transformers directly."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    from conftest import TINY_DIMS, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=128, n_embd=TINY_DIMS["hidden_size"], n_layer=2,
                        n_head=TINY_DIMS["num_attention_heads"], pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    folder = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = train(TrainConfig(model=str(folder), strategy="full", epochs=1, batch_size=8, max_length=16,
                               out=str(tmp_path / "o")), data=toy_lm_data, progress=False)
    outputs = ExampleOutputs.load(tmp_path / "o", "validation")
    assert outputs.metrics()["loss"] == pytest.approx(record["metrics"]["validation"]["loss"], rel=1e-4)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "o" / "model").eval()
    blocks, _ = tokenize(toy_lm_data, tokenizer, 16)
    ids = torch.tensor(blocks["validation"]["input_ids"])
    positions = torch.tensor(blocks["validation"]["position_ids"])  # each packed text attends to itself only
    with torch.no_grad():  # every block full: the mean over predicted tokens
        direct = model(input_ids=ids, position_ids=positions, labels=ids, use_cache=False).loss.item()
    assert record["metrics"]["validation"]["loss"] == pytest.approx(direct, rel=1e-4)


def test_causal_lm_text_becomes_full_blocks_joined_by_eos(tiny_llama_dir, toy_lm_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenized, _ = tokenize(toy_lm_data, tokenizer, 16)
    blocks = list(tokenized["train"]["input_ids"])
    assert all(len(b) == 16 for b in blocks)
    stream = [t for text in list(toy_lm_data.train["text"]) for t in tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]]
    assert [t for b in blocks for t in b] == stream[: 16 * len(blocks)]
    assert len(stream) - 16 * len(blocks) < 16  # only the last partial block is dropped
    assert list(tokenized["train"]["labels"]) == list(blocks)


def test_sequences_per_example_counts_the_blocks_a_causal_lm_trains_on(tiny_llama_dir, toy_lm_data, toy_classification_data):
    """The planner's minimum counts what a step's batch holds: a causal LM's packed blocks per text (here several
    short sentences share a block of 16 tokens, so fewer than one), one sequence per classification example."""
    from transformers import AutoTokenizer

    from tunelab.run.training import sequences_per_example

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    for length in (16, 4):
        config = TrainConfig(model=str(tiny_llama_dir), task="causal-lm", max_length=length)
        tokenized, _ = tokenize(toy_lm_data, tokenizer, length)
        per_text = sequences_per_example(config, toy_lm_data)
        assert per_text == len(tokenized["train"]) / len(toy_lm_data.train)
    assert sequences_per_example(TrainConfig(model=str(tiny_llama_dir), max_length=4), toy_lm_data) > 1 > sequences_per_example(
        TrainConfig(model=str(tiny_llama_dir), max_length=16), toy_lm_data)
    assert sequences_per_example(TrainConfig(model="no-such-model"), toy_classification_data) == 1.0  # nothing loaded


def test_causal_lm_text_without_an_eos_token_is_joined_by_sep(tiny_bert_dir, toy_lm_data):
    """A decoder trained with a BERT tokenizer (no EOS, as some GPT-2 checkpoints ship): documents are
    separated by [SEP] instead of failing in the collator on a None token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert tokenizer.eos_token_id is None and tokenizer.sep_token_id is not None
    tokenized, _ = tokenize(toy_lm_data, tokenizer, 16)
    blocks = list(tokenized["train"]["input_ids"])
    stream = [t for text in list(toy_lm_data.train["text"]) for t in tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id]]
    assert blocks and [t for b in blocks for t in b] == stream[: 16 * len(blocks)]
    tokenizer.sep_token = None  # neither: the documents simply follow one another
    tokenized, _ = tokenize(toy_lm_data, tokenizer, 16)
    stream = [t for text in list(toy_lm_data.train["text"]) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert [t for b in tokenized["train"]["input_ids"] for t in b] == stream[: 16 * len(tokenized["train"])]


def test_classification_tokens_are_truncated_with_a_warning(tiny_bert_dir, toy_classification_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenized, warnings = tokenize(toy_classification_data, tokenizer, 6)  # the toy texts take up to 8 tokens
    assert max(tokenized["train"]["length"]) == 6
    assert list(tokenized["train"]["labels"]) == list(toy_classification_data.train["label"])
    assert any("train texts were truncated to 6 tokens" in w for w in warnings)
    assert not any("--max-length" in w for w in warnings)  # no limit given: nothing to point to
    _, warnings = tokenize(toy_classification_data, tokenizer, 6, limit=64)
    said = [w for w in warnings if "--max-length" in w]
    assert len(said) == 1 and "train texts were truncated to 6 tokens (--max-length up to 64 keeps more" in said[0]


def test_sample_limits_cut_train_and_evaluation_splits(toy_classification_data, tmp_path):
    path = tmp_path / "toy.jsonl"
    rows = [{"text": t, "label": ["neg", "pos"][y]} for split in toy_classification_data.splits().values() for t, y in zip(split["text"], split["label"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    full = load_data(TrainConfig(data=str(path)))
    small = load_data(TrainConfig(data=str(path), max_train_samples=20, max_eval_samples=5))
    assert len(small.train) == 20 and len(small.validation) == 5 and len(small.test) == 5
    assert set(small.train["text"]) <= set(full.train["text"])
    assert sorted(small.train["label"]) == [0] * 10 + [1] * 10  # stratified
    half = load_data(TrainConfig(data=str(path), data_fraction=0.5))
    assert len(half.train) == round(len(full.train) * 0.5) and half.test["text"] == full.test["text"]


def test_final_validation_metrics_come_from_the_last_steps_evaluation_only():
    from tunelab.run.training import _final_step_eval

    history = [
        {"loss": 0.7, "step": 5},
        {"eval_loss": 0.6, "eval_accuracy": 0.6, "step": 5},
        {"loss": 0.5, "step": 10},
        {"eval_loss": 0.4, "eval_accuracy": 0.8, "step": 10},
    ]
    assert _final_step_eval(history, 10)["eval_accuracy"] == 0.8
    # steps after the last evaluation (a run that stops mid-epoch): evaluate again, never reuse stale numbers
    assert _final_step_eval(history, 12) is None
    assert _final_step_eval(history[:1], 5) is None


@pytest.mark.parametrize("memory_mb", [32.0, 0.0])
def test_initial_weights_restore_from_memory_or_disk_and_detect_change(tiny_bert_dir, tmp_path, monkeypatch, memory_mb):
    import torch
    from transformers import AutoModelForSequenceClassification

    from tunelab.run.training import InitialWeights

    monkeypatch.setattr(InitialWeights, "MEMORY_MB", memory_mb)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    spill = tmp_path / ".tmp-initial-weights.safetensors"
    before = InitialWeights(model, spill=spill)
    assert spill.exists() == (memory_mb == 0.0)  # a full model's worth spills to disk, not a second RAM copy
    assert not before.changed(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    assert before.changed(model)
    before.restore(model)
    for n, p in model.named_parameters():
        assert torch.equal(p, start[n]), n
    before.discard()
    assert not spill.exists() and not before.changed(model)


def test_weight_decay_spares_biases_and_norms_as_trainer_does(tiny_bert_dir, toy_classification_data, tmp_path):
    from transformers import TrainingArguments

    from tunelab.run.training import make_trainer_class, prepare

    run = prepare(TrainConfig(model=str(tiny_bert_dir), strategy="full"), toy_classification_data)
    args = TrainingArguments(output_dir=str(tmp_path), weight_decay=0.01, report_to="none", use_cpu=True)
    trainer = make_trainer_class()(model=run.model, args=args)
    trainer.tunelab_param_groups = run.strategy.param_groups(run.model, run.layout, 1e-3, run.config)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in run.model.named_parameters()}
    by_decay: dict[float, set[str]] = {}  # the body and the new head are each split by decay
    for g in optimizer.param_groups:
        by_decay.setdefault(g["weight_decay"], set()).update(names[id(p)] for p in g["params"])
    assert set(by_decay) == {0.01, 0.0}
    assert {g["lr"] for g in optimizer.param_groups} == {1e-3, 2e-3}  # the body's rate and the head's
    assert all("bias" in n or "LayerNorm" in n for n in by_decay[0.0])
    assert any(n.endswith("query.weight") for n in by_decay[0.01])
    assert sum(len(v) for v in by_decay.values()) == sum(p.requires_grad for p in run.model.parameters())


def test_optimizer_is_the_one_trainer_would_build_over_the_strategy_groups(tiny_bert_dir, toy_classification_data, tmp_path):
    from transformers import Trainer, TrainingArguments

    from tunelab.run.training import make_trainer_class, prepare

    run = prepare(TrainConfig(model=str(tiny_bert_dir), strategy="gradual", layer_lr_decay=0.5), toy_classification_data)
    for optim in ("adamw_torch_fused", "adamw_torch", "sgd"):
        args = TrainingArguments(output_dir=str(tmp_path), optim=optim, report_to="none", use_cpu=True)
        trainer = make_trainer_class()(model=run.model, args=args)
        trainer.tunelab_param_groups = run.strategy.param_groups(run.model, run.layout, 1e-3, run.config)
        optimizer = trainer.create_optimizer()
        expected_cls, expected_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, run.model)
        assert type(optimizer) is expected_cls
        assert optimizer.defaults.get("fused") == expected_kwargs.get("fused")
        # the strategy's per-group learning rates survive (layer-wise decay: lower blocks slower)
        assert len({g["lr"] for g in optimizer.param_groups}) > 1


def test_bf16_precision_trains_under_autocast_and_keeps_float32_weights(tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch):
    """--precision bf16 is transformers' mixed precision: the forward runs under bfloat16 autocast,
    the weights (and so the saved model) stay float32, and the record says which precision ran."""
    import torch
    from transformers import AutoModelForSequenceClassification

    seen = []
    original = torch.nn.Linear.forward

    def spy(self, x):
        out = original(self, x)
        if self.training:
            seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    config = TrainConfig(model=str(tiny_bert_dir), strategy="full", epochs=1, batch_size=8, precision="bf16", out=str(tmp_path / "run"))
    record = train(config, data=toy_classification_data, progress=False)
    assert record["train_info"]["precision"] == "bf16"
    assert seen and set(seen) == {torch.bfloat16}
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert {p.dtype for p in saved.parameters()} == {torch.float32}


def test_precision_choices_are_checked(monkeypatch):
    import torch

    assert TrainConfig(precision="half").problems() == ["precision='half' is unknown: use auto, bf16, fp16 or fp32"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TrainConfig(precision="fp16").problems() == [
        "precision='fp16' needs a CUDA GPU (float16 autocast is not offered on CPU): use bf16 or fp32"
    ]
    assert TrainConfig(precision="auto").problems() == []


def test_a_text_pair_trains_as_a_pair_and_predicts_from_tab_separated_input(tiny_bert_dir, tmp_path):
    """Pairs are encoded as the tokenizer encodes pairs (BERT: the second segment's token types are 1); the artifact
    takes ``a<TAB>b`` and refuses a lone text. (The cache on pairs: tests/test_cache.py.)"""
    import random

    from datasets import Dataset

    from tunelab.config import TrainConfig
    from tunelab.data import TaskData
    from tunelab.errors import TunelabError
    from tunelab.run.artifacts import predict
    from tunelab.run.training import prepare, train

    rng = random.Random(0)
    words = "good bad film story long short".split()

    def split(n):
        labels = [i % 2 for i in range(n)]
        return Dataset.from_dict({"text": [" ".join(rng.choices(words, k=5)) for _ in labels],
                                  "text_pair": [" ".join(rng.choices(words, k=3)) for _ in labels], "label": labels})

    data = TaskData(task="classification", train=split(32), validation=split(16), test=split(16), label_names=["no", "yes"],
                    source="toy-pairs", fingerprint="toy-pairs-v1")
    run = prepare(TrainConfig(model=str(tiny_bert_dir), strategy="head"), data)
    row = run.tokenized["train"][0]
    assert set(row["token_type_ids"]) == {0, 1} and row["input_ids"].count(run.tokenizer.sep_token_id) == 2
    train(TrainConfig(model=str(tiny_bert_dir), strategy="lora", epochs=1, batch_size=8, out=str(tmp_path / "o")),
          data=data, progress=False)
    rows = predict(tmp_path / "o", ["good film\tlong story", "bad film\tshort"])
    assert [r["label"] in ("no", "yes") for r in rows] == [True, True]
    with pytest.raises(TunelabError, match=r"trained on text pairs: give each input as the two texts separated by a tab"):
        predict(tmp_path / "o", ["a lone text"])
    # evaluate: the pair as trained (token types included), or one line when a single text column is given
    from tunelab.errors import DataError
    from tunelab.run.evaluation import evaluate_artifact

    csv = tmp_path / "pairs.csv"
    csv.write_text("premise,hypothesis,label\n" + "".join(f"{t},{p},{['no', 'yes'][y]}\n" for t, p, y in
                                                          zip(data.test["text"], data.test["text_pair"], data.test["label"])))
    scored = evaluate_artifact(tmp_path / "o", str(csv), split="all", text_column="premise,hypothesis")
    assert scored["examples"] == 16 and 0 <= scored["accuracy"] <= 1
    with pytest.raises(DataError, match=r"was trained on text pairs, and text_column='premise' gives one text per example: name its two text columns, e.g. text_column='premise,hypothesis'"):
        evaluate_artifact(tmp_path / "o", str(csv), text_column="premise")


def test_a_checkpoint_that_is_already_a_classifier_gets_its_head_replaced_or_kept_and_said(tiny_bert_dir,
                                                                                           toy_classification_data,
                                                                                           tmp_path):
    """A sentiment model fine-tuned further: with another number of classes its head is replaced (transformers
    refused the mismatched shapes before); with as many, it is the starting point (matched by name: the next test), and said."""
    from dataclasses import replace

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.run.training import prepare

    classifier = tmp_path / "classifier"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=3, id2label={0: "bad", 1: "meh", 2: "good"}, label2id={"bad": 0, "meh": 1, "good": 2})
    model.save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(classifier)
    config = TrainConfig(model=str(classifier), strategy="head", epochs=1, batch_size=8, out=str(tmp_path / "run"))
    run = prepare(config, data=toy_classification_data)
    assert run.model.num_labels == 2
    assert any("its own head for 3 classes (bad, meh, good); a new head for your 2 classes replaces it" in w
               for w in run.warnings)
    three = replace(toy_classification_data, label_names=["bad", "meh", "good"])
    run = prepare(config.replace(), data=three)
    kept = run.model.classifier.weight.detach()
    assert torch.equal(kept, model.classifier.weight.detach())
    assert any("starts from the checkpoint's own classification head, for the same classes" in w for w in run.warnings)
    plain = prepare(config.replace(model=str(tiny_bert_dir)), data=toy_classification_data)
    assert not any("classification head" in w for w in plain.warnings)


def test_a_classifier_checkpoint_s_head_meets_your_labels_by_name_not_by_position(tiny_bert_dir, toy_classification_data,
                                                                                   tmp_path):
    """A sentiment checkpoint saved as {0: pos, 1: neg} met data whose sorted labels are (neg, pos): its head was kept
    matched by position, so every prediction came out inverted (accuracy 0 where the checkpoint scored 1). Its rows are
    now put in the data's order; with some names alike those rows are kept and the others start new."""
    from dataclasses import replace

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.run.training import prepare

    def checkpoint(name: str, names: list[str]):
        folder = tmp_path / name
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_bert_dir, num_labels=len(names), id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)})
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
        return folder, model.classifier.weight.detach(), model.classifier.bias.detach()

    folder, weight, bias = checkpoint("inverted", ["pos", "neg"])
    config = TrainConfig(model=str(folder), strategy="head", epochs=1, batch_size=8, out=str(tmp_path / "run"))
    run = prepare(config, data=toy_classification_data)  # labels neg, pos
    assert torch.equal(run.model.classifier.weight.detach(), weight[[1, 0]])
    assert torch.equal(run.model.classifier.bias.detach(), bias[[1, 0]])
    assert run.model.config.id2label == {0: "neg", 1: "pos"}
    assert any("its rows put in your labels' order (neg, pos), so that each class keeps its meaning" in w
               for w in run.warnings)

    folder, weight, _ = checkpoint("three", ["bad", "meh", "good"])
    three = replace(toy_classification_data, label_names=["Good", "bad", "ok"])
    run = prepare(config.replace(model=str(folder)), data=three)
    rows = run.model.classifier.weight.detach()
    assert torch.equal(rows[0], weight[2]) and torch.equal(rows[1], weight[0])
    assert not any(torch.equal(rows[2], weight[i]) for i in range(3))
    assert any("keeps the checkpoint's classification head rows for Good, bad (matched by name); ok gets a new row; "
               "its meh is dropped" in w for w in run.warnings)
    # a 3-class checkpoint on 2 of its classes: transformers loads a new 2-row head; its rows are taken from the weights
    run = prepare(config.replace(model=str(folder)), data=replace(toy_classification_data, label_names=["good", "bad"]))
    assert torch.equal(run.model.classifier.weight.detach(), weight[[2, 0]])
    assert any("rows for good, bad (matched by name); its meh is dropped" in w for w in run.warnings)


def test_a_resized_head_whose_rows_cannot_be_read_stays_new_and_says_so(tiny_bert_dir, tmp_path, monkeypatch):
    """Rows of a head of another size come from the checkpoint's weights files; where they cannot be read (a format
    neither safetensors nor torch reads), the new head transformers loaded stays, and the line says so, not 'kept'."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.models import load_model, loading

    folder = tmp_path / "three"
    AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=3, id2label={0: "bad", 1: "meh", 2: "good"}).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
    lost = ("the checkpoint is a classifier with its own head for another number of classes; its rows could not be "
            "found, so a new head for your 2 classes replaces it")
    for found in (None, {"classifier.weight": torch.zeros(5, 32), "classifier.bias": torch.zeros(5)}):  # none; not its head
        monkeypatch.setattr(loading, "_checkpoint_tensors", lambda *a, found=found: found)
        model, _ = load_model(str(folder), task="classification", label_names=["bad", "good"])
        assert model.tunelab_head_note == lost


def test_head_plan_says_in_one_line_how_a_checkpoint_s_classes_meet_yours():
    from transformers import BertConfig

    from tunelab.models.loading import HeadPlan, head_plan

    def plan(theirs, yours):
        config = BertConfig(architectures=["BertForSequenceClassification"], id2label=dict(enumerate(theirs)))
        return head_plan(config, yours)

    assert head_plan(BertConfig(), ["a", "b"]) == HeadPlan()
    assert plan(["neg", "pos"], ["neg", "pos"]).rows == (0, 1)
    assert plan(["positive", "negative"], ["negative", "positive"]).rows == (1, 0)
    assert plan(["NEGATIVE", "POSITIVE "], ["negative", "positive"]).rows == (0, 1)  # distilbert-sst2's names
    other = plan(["bad", "good"], ["neg", "pos"])
    assert other.rows is None and "names other classes (bad, good) than yours (neg, pos): a new head replaces it" in other.note
    unnamed = plan(["LABEL_0", "LABEL_1"], ["neg", "pos"])
    assert unnamed.rows == (0, 1) and "matched by number to yours (neg as its LABEL_0, pos as its LABEL_1)" in unnamed.note
    ids = plan(["positive", "negative"], ["0", "1"])
    assert ids.rows == (0, 1) and "(0 as its positive, 1 as its negative)" in ids.note
    fewer = plan(["a", "b", "c"], ["c", "a"])
    assert fewer.rows == (2, 0) and fewer.resized and "rows for c, a (matched by name); its b is dropped" in fewer.note
    assert plan(["LABEL_0", "LABEL_1", "LABEL_2"], ["a", "b"]).rows is None


def test_a_multi_label_checkpoint_trains_single_label_and_says_so(tiny_bert_dir, toy_classification_data, tmp_path):
    """A checkpoint fine-tuned multi-label (a toxicity classifier) states problem_type in its config; transformers
    would take its sigmoid loss on tunelab's one integer label per text and fail in the first step. The run trains
    single-label from its head and says that the head was trained otherwise."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    classifier = tmp_path / "toxic"
    AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
        problem_type="multi_label_classification").save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(classifier)
    config = TrainConfig(model=str(classifier), strategy="full", epochs=1, batch_size=8, out=str(tmp_path / "run"))
    record = train(config, data=toy_classification_data, progress=False)
    assert record["run_info"]["status"] == "success"
    assert any("trained multi-label, a sigmoid per class; here one label per text" in n
               for n in record["train_info"]["notes"])
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert saved.config.problem_type == "single_label_classification"



def test_an_adapter_trained_on_a_classifier_checkpoint_loads_with_its_own_head(tiny_bert_dir, toy_classification_data,
                                                                                tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.run.artifacts import load_artifact
    from tunelab.run.training import train

    classifier = tmp_path / "classifier"
    AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3).save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(classifier)
    config = TrainConfig(model=str(classifier), strategy="lora", epochs=1, batch_size=8, out=str(tmp_path / "run"),
                         forgetting=False)
    train(config, data=toy_classification_data, progress=False)
    model, _, info = load_artifact(tmp_path / "run")
    assert info["format"] == "peft" and model.base_model.model.classifier.out_features == 2


def test_keep_reads_the_part_of_a_long_text_it_names_in_training_predict_and_evaluate(tiny_bert_dir, tmp_path):
    """``--keep end`` / ``start+end``: the special tokens stay at both ends and the kept tokens are the text's own
    (its end, or a quarter from its start and the rest from its end); the artifact records it, and predict and
    evaluate cut a long text the same way (their logits match a model fed the cut ids by hand)."""
    import torch
    from datasets import Dataset

    from tunelab.config import TrainConfig
    from tunelab.data import TaskData
    from tunelab.errors import ConfigError
    from tunelab.run.artifacts import load_artifact, predict
    from tunelab.run.encoding import encode
    from tunelab.run.training import prepare, train

    filler = " ".join(["film"] * 40)
    tok = tiny_tokenizer_of(tiny_bert_dir)
    long = f"story {filler} good"
    words = tok(long, add_special_tokens=False)["input_ids"]
    for keep, want in (("start", words[:14]), ("end", words[-14:]), ("start+end", words[:3] + words[-11:])):
        ids = encode(tok, [long], None, 16, keep)["input_ids"][0]
        assert ids == [tok.cls_token_id, *want, tok.sep_token_id], keep
    assert encode(tok, ["short one"], None, 16, "end")["input_ids"] == encode(tok, ["short one"], None, 16)["input_ids"]

    def split(n):
        labels = [i % 2 for i in range(n)]
        return Dataset.from_dict({"text": [f"story {filler} {['bad', 'good'][y]}" for y in labels], "label": labels})

    data = TaskData(task="classification", train=split(32), validation=split(8), test=split(8), label_names=["neg", "pos"],
                    source="toy-long", fingerprint="toy-long-v1")
    run = prepare(TrainConfig(model=str(tiny_bert_dir), strategy="head", max_length=16, keep="end"), data)
    assert {run.tokenizer.decode(r[-2:-1]) for r in run.tokenized["train"]["input_ids"]} == {"bad", "good"}
    assert any("--keep start+end or end" in w for w in prepare(TrainConfig(model=str(tiny_bert_dir), strategy="head",
                                                                              max_length=16), data).warnings)
    out = tmp_path / "o"
    train(TrainConfig(model=str(tiny_bert_dir), strategy="full", epochs=1, batch_size=8, max_length=16, keep="start+end",
                      out=str(out)), data=data, progress=False)
    model, tokenizer, info = load_artifact(out)
    assert info["keep"] == "start+end"
    text = f"story {filler} good"
    ids = torch.tensor([encode(tokenizer, [text], None, 16, "start+end")["input_ids"][0]])
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.softmax(-1)[0]
    got = predict(out, [text])[0]["probabilities"]
    assert [got[n] for n in ("neg", "pos")] == pytest.approx(want.tolist(), abs=1e-5)
    with pytest.raises(ConfigError, match="--keep end applies to single texts"):
        pairs = TaskData(task="classification", train=split(32).add_column("text_pair", ["x"] * 32), validation=split(8),
                         test=split(8), label_names=["neg", "pos"], source="p", fingerprint="p")
        pairs.validation = pairs.validation.add_column("text_pair", ["x"] * 8)
        pairs.test = pairs.test.add_column("text_pair", ["x"] * 8)
        prepare(TrainConfig(model=str(tiny_bert_dir), strategy="head", keep="end"), pairs)


def tiny_tokenizer_of(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize(("arch", "pad", "takes"),
                         [("bert", 0, 64), ("roberta", 0, 63), ("roberta", 1, 62), ("mpnet", 1, 62), ("mpt", 0, 64)])
def test_the_position_limit_is_the_longest_input_the_model_runs(arch, pad, takes):
    """A position table built with a padding_idx (RoBERTa, MPNet, ...) numbers positions from padding_idx + 1:
    with 64 rows such a model takes 64 - (padding_idx + 1) tokens, and one more fails (on a GPU, a device-side
    assert that poisons the process); MPT states its 64 as max_seq_len. The limit is found from the model (or its
    config), for any architecture."""
    import torch
    import transformers as T

    from tunelab.models import max_input_length, position_limit

    if arch == "mpt":
        config = T.MptConfig(vocab_size=100, pad_token_id=pad, max_seq_len=64, d_model=32, n_layers=1, n_heads=4)
    else:
        config = {"bert": T.BertConfig, "roberta": T.RobertaConfig, "mpnet": T.MPNetConfig}[arch](
            vocab_size=100, pad_token_id=pad, max_position_embeddings=64, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=4, intermediate_size=64)
    model = T.AutoModel.from_config(config).eval()
    assert position_limit(model) == position_limit(config) == takes

    def run(n):
        ids = torch.full((1, n), 5)
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=torch.ones_like(ids))

    run(takes)
    with pytest.raises((IndexError, RuntimeError)):
        run(takes + 1)
    tokenizer = T.BertTokenizerFast(vocab={p: i for i, p in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])},
                                    model_max_length=128)
    assert max_input_length(model, tokenizer) == takes
    with pytest.raises(ConfigError, match=f"at most {takes}"):
        resolve_max_length(TrainConfig(max_length=takes + 1), "classification", config, tokenizer)


def test_a_soft_prompt_takes_its_positions_from_the_longest_input(tiny_bert_dir, toy_classification_data, tmp_path):
    """Prompt tuning puts its virtual tokens before every input: with 128 positions and 4 virtual tokens the longest
    input is 124 tokens (the default is capped there, a longer --max-length is refused saying why), and that input
    runs through the prepared model where one token more fails."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from tunelab.run.training import prepare

    config = TrainConfig(model=str(tiny_bert_dir), strategy="prompt-tuning", num_virtual_tokens=4, epochs=1,
                         out=str(tmp_path / "o"))
    model_config, tokenizer = AutoConfig.from_pretrained(tiny_bert_dir), AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert resolve_max_length(config, "classification", model_config, tokenizer) == 124
    assert resolve_max_length(config.replace(strategy="lora"), "classification", model_config, tokenizer) == 128
    with pytest.raises(ConfigError, match=r"maximum of 124 with prompt-tuning, which puts 4 positions before every "
                                          r"input \(a soft prompt of 4 virtual tokens\): use at most 124"):
        resolve_max_length(config.replace(max_length=128), "classification", model_config, tokenizer)
    # a prompt that fills the positions leaves no room for text: refused before the model is touched
    with pytest.raises(ConfigError, match=r"puts 125 positions before every input .*leaves 3 of this model's 128 for "
                                          r"the text: put at most 120 before it"):
        resolve_max_length(config.replace(num_virtual_tokens=125), "classification", model_config, tokenizer)
    with pytest.raises(ConfigError, match=r"leaves 0 of this model's 128"):
        resolve_max_length(config.replace(num_virtual_tokens=1000), "classification", model_config, tokenizer)
    run = prepare(config, toy_classification_data)
    assert run.max_length == 124

    def forward(n):
        ids = torch.full((1, n), tokenizer.unk_token_id)
        with torch.no_grad():
            return run.model(input_ids=ids, attention_mask=torch.ones_like(ids))

    forward(124)
    with pytest.raises((IndexError, RuntimeError)):
        forward(125)


def test_a_pair_on_a_model_with_one_token_type_is_told_apart_by_separators_alone(tmp_path):
    """A checkpoint with type_vocab_size 1 (RoBERTa-style) beside a BERT tokenizer, which numbers a pair's second
    text 1: the run gives it no token types (before: an index error in the first forward pass; on a GPU a
    device-side assert), and the artifact's tokenizer keeps that, so plain transformers runs it too."""

    import torch
    import transformers as T

    from conftest import tiny_tokenizer
    from tunelab.run.artifacts import predict

    tokenizer = tiny_tokenizer()
    config = T.BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, max_position_embeddings=64,
                          hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, type_vocab_size=1)
    T.BertModel(config).save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert "token_type_ids" in tokenizer("a", "b")  # the tokenizer alone would give the second text type 1
    data = _toy_pairs("toy-pairs-one-type")
    train(TrainConfig(model=str(tmp_path / "m"), strategy="full", epochs=1, batch_size=8, out=str(tmp_path / "o")),
          data=data, progress=False)
    assert len(predict(tmp_path / "o", ["good film\tlong story"])) == 1
    plain_tok = T.AutoTokenizer.from_pretrained(tmp_path / "o" / "model")
    enc = plain_tok("good film", "long story", return_tensors="pt")
    assert "token_type_ids" not in enc
    with torch.no_grad():
        T.AutoModelForSequenceClassification.from_pretrained(tmp_path / "o" / "model")(**enc)


def _glued_decoder(folder, eos: bool = True, config_eos: bool = True):
    """A tiny GPT-2 decoder whose word-level tokenizer (words split at spaces), as GPT-2's and most decoders',
    encodes a pair with nothing between its two texts (``$A $B``); ``eos=False``: a tokenizer without an end-of-text
    token, ``config_eos=False``: a model config that names none either."""
    import transformers as T
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "</s>", "\n", *"good bad film story long short the cat sat on mat".split()]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(" ", "removed")
    tokenizer = T.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                                          **({"eos_token": "</s>"} if eos else {"pad_token": "<unk>"}))
    config = T.GPT2Config(vocab_size=len(words), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                          eos_token_id=1 if config_eos else None, bos_token_id=1 if config_eos else None)
    T.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return words


def test_a_pair_on_a_decoder_whose_tokenizer_glues_it_gets_a_separator_as_trained_everywhere(tmp_path):
    """A decoder's tokenizer that encodes a pair as ``$A $B`` (GPT-2's, Llama-style ones) made "The cat sat" and
    "on the mat" read as "The cat saton the mat". The tokenizer tunelab loads puts its EOS between the texts (a
    newline where it has none); training, the frozen-layer cache's tokens, prediction and the saved tokenizer
    encode a pair alike, the card says so, and a single text is encoded as before."""

    import transformers as T

    from tunelab.models import load_tokenizer
    from tunelab.run.artifacts import load_artifact, predict
    from tunelab.run.encoding import encode
    from tunelab.run.training import prepare

    words = _glued_decoder(tmp_path / "m")
    the, cat, sat, on = (words.index(w) for w in ("the", "cat", "sat", "on"))
    assert T.AutoTokenizer.from_pretrained(tmp_path / "m")("the cat", "sat on")["input_ids"] == [the, cat, sat, on]
    tokenizer = load_tokenizer(str(tmp_path / "m"))
    separated = [the, cat, 1, sat, on]  # 1: </s>
    assert encode(tokenizer, ["the cat"], ["sat on"], 32)["input_ids"] == [separated]
    assert tokenizer("the cat")["input_ids"] == [the, cat]  # a single text as before
    _glued_decoder(tmp_path / "n", eos=False, config_eos=False)
    assert load_tokenizer(str(tmp_path / "n"))("the cat", "sat on")["input_ids"] == [the, cat, words.index("\n"), sat, on]

    data = _toy_pairs("toy-pairs-glued")
    config = TrainConfig(model=str(tmp_path / "m"), strategy="last-n", epochs=1, batch_size=8, out=str(tmp_path / "o"))
    run = prepare(config, data)
    first = data.train[0]
    assert run.tokenized["train"][0]["input_ids"] == tokenizer(first["text"], first["text_pair"])["input_ids"]
    assert 1 in run.tokenized["train"][0]["input_ids"]
    train(config, data=data, progress=False)
    plain = T.AutoTokenizer.from_pretrained(tmp_path / "o" / "model")
    assert plain("the cat", "sat on")["input_ids"] == separated
    assert load_artifact(tmp_path / "o")[1]("the cat", "sat on")["input_ids"] == separated
    assert "with '</s>' between its two texts" in (tmp_path / "o" / "model" / "README.md").read_text()
    assert len(predict(tmp_path / "o", ["good film\tlong story"])) == 1


def test_a_causal_lm_whose_tokenizer_names_no_eos_joins_documents_with_the_configs(tmp_path):
    """A tokenizer with no EOS, SEP or pad token joined a causal LM's documents with nothing between them, though
    the model's config names ``eos_token_id``: the tokenizer tunelab loads takes the config's (and saves it)."""
    from datasets import Dataset

    from tunelab.data import TaskData
    from tunelab.models import load_tokenizer
    from tunelab.run.packing import lm_blocks

    words = _glued_decoder(tmp_path / "m", eos=False)
    tokenizer = load_tokenizer(str(tmp_path / "m"))
    assert tokenizer.eos_token == "</s>"
    blocks, _, _, _ = lm_blocks({"text": ["the cat", "sat on"]}, tokenizer, 16)
    assert blocks == [[words.index("the"), words.index("cat"), 1, words.index("sat"), words.index("on"), 1]]
    texts = Dataset.from_dict({"text": ["the cat sat on the mat"] * 12})
    data = TaskData(task="causal-lm", train=texts, validation=texts.select(range(4)), test=texts.select(range(4)),
                    source="toy-noeos", fingerprint="toy-noeos")
    train(TrainConfig(model=str(tmp_path / "m"), strategy="full", epochs=1, batch_size=4, max_length=8,
                      out=str(tmp_path / "o")), data=data, progress=False)
    import transformers as T

    assert T.AutoTokenizer.from_pretrained(tmp_path / "o" / "model").eos_token == "</s>"


def test_evaluate_scores_the_split_training_held_out_with_the_runs_seed_fractions_and_columns(tiny_bert_dir, tmp_path):
    """`tunelab evaluate --split test` took seed 42 and the default fractions whatever the run used: on a run with
    another seed it scored rows that had been trained on. It now reads them from the artifact (and from
    run_config.yaml for a folder written before the artifact recorded them)."""
    import json

    from tunelab.run.evaluation import evaluate_artifact

    rows = "".join(f"text number {i} {'good great' if i % 2 else 'bad awful'},{i % 2}\n" for i in range(60))
    (tmp_path / "d.csv").write_text("review,stars\n" + rows)
    config = TrainConfig(model=str(tiny_bert_dir), data=str(tmp_path / "d.csv"), text_column="review",
                         label_column="stars", strategy="full", seed=7, test_fraction=0.3, max_eval_samples=15,
                         epochs=1, batch_size=8, out=str(tmp_path / "o"))
    record = train(config, progress=False)
    for split in ("validation", "test"):
        scored = evaluate_artifact(tmp_path / "o", str(tmp_path / "d.csv"), split=split)
        assert scored["examples"] == record["meta_info"][f"n_{split}"]
        assert scored["loss"] == pytest.approx(record["metrics"][split]["loss"], rel=1e-4)
    other = evaluate_artifact(tmp_path / "o", str(tmp_path / "d.csv"), seed=42, text_column="review", label_column="stars")
    assert other["examples"] != record["meta_info"]["n_test"] or other["loss"] != pytest.approx(record["metrics"]["test"]["loss"])
    info_path = tmp_path / "o" / "model" / "tunelab.json"
    info = json.loads(info_path.read_text())
    del info["split"]  # an artifact from before: run_config.yaml beside it says the same
    info_path.write_text(json.dumps(info))
    assert evaluate_artifact(tmp_path / "o", str(tmp_path / "d.csv"))["loss"] == pytest.approx(
        record["metrics"]["test"]["loss"], rel=1e-4)


def _chat_data(n: int = 24):
    """Causal-LM TaskData of two-turn conversations (the user's question, the assistant's answer)."""
    from datasets import Dataset

    from tunelab.data import TaskData
    from tunelab.data.chat import render

    def split(offset: int, size: int) -> Dataset:
        messages = [[{"role": "user", "content": f"was film {i} good"},
                     {"role": "assistant", "content": "very good" if i % 2 else "quite dull"}]
                    for i in range(offset, offset + size)]
        return Dataset.from_dict({"text": [render(m) for m in messages], "messages": messages})

    return TaskData(task="causal-lm", train=split(0, n), validation=split(n, 8), test=split(n + 8, 8),
                    source="toy-chat", fingerprint=f"toy-chat-{n}")


@pytest.mark.parametrize("template", [False, True])
def test_a_conversation_learns_only_the_assistants_turns(tiny_llama_dir, template):
    """--loss-on assistant (the default): the user's turn is context, not a target; the assistant's reply and what
    ends it (the template's end-of-turn marker, or the EOS after the last turn) are targets. --loss-on all learns
    every token, as before."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    if template:
        tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }} says {{ m['content'] }} ; {% endfor %}"
                                   "{% if add_generation_prompt %}assistant says {% endif %}")
    data = _chat_data()
    assistant, _ = tokenize(data, tokenizer, 64, loss_on="assistant")
    everything, _ = tokenize(data, tokenizer, 64, loss_on="all")
    ids, labels = assistant["train"]["input_ids"][0], assistant["train"]["labels"][0]
    assert everything["train"]["input_ids"][0] == ids  # the same tokens, other targets
    assert everything["train"]["labels"][0] == ids
    learnt = tokenizer.decode([t for t, label in zip(ids, labels) if label != IGNORE_INDEX])
    end = "; [SEP]" if template else "[SEP]"
    first = data.train[0]["messages"][1]["content"]
    assert learnt.startswith(f"{first} {end}")  # the first conversation's answer and its end, nothing of the question
    assert "film" not in learnt and "was" not in learnt and "user" not in learnt
    assert learnt.count("[SEP]") == learnt.count("good") + learnt.count("dull")  # every answer ends, no question does


#: Mistral's and Llama 2's templates: a system turn, or two users' turns in a row, raise in the template itself.
STRICT_TEMPLATE = ("{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                   "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                   "{% endif %}{{ m['role'] + ' says ' + m['content'] + ' ; ' }}{% endfor %}"
                   "{% if add_generation_prompt %}assistant says {% endif %}")


@pytest.mark.parametrize("loss_on", ["assistant", "all"])
def test_a_conversation_the_chat_template_refuses_is_one_line_naming_it(tiny_llama_dir, loss_on):
    """A template that raises on a conversation (roles that must alternate, no system role) is a DataError that
    names the conversation and gives the template's reason, in training and in predict's prompt, not a jinja2
    traceback."""
    from transformers import AutoTokenizer

    from tunelab.data.chat import generation_prompt
    from tunelab.errors import DataError

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.chat_template = STRICT_TEMPLATE
    data = _chat_data()
    tokenize(data, tokenizer, 64, loss_on=loss_on)  # alternating user / assistant turns: taken
    system = [{"role": "system", "content": "be brief"}]
    data.validation = data.validation.map(lambda row: {"messages": system + row["messages"]})
    with pytest.raises(DataError, match=r"chat template .* refuses the conversation .*'was film \d+ good'.*: "
                                        r"Conversation roles must alternate") as caught:
        tokenize(data, tokenizer, 64, loss_on=loss_on)
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match="Conversation roles must alternate"):
        generation_prompt(tokenizer, "was it good", system="be brief")


def test_a_template_that_renders_the_last_turn_apart_learns_each_replys_end_marker(tiny_llama_dir):
    """A template whose conversation is not an extension of its beginning (Qwen3's empty think block on the last
    assistant's turn only, templates that drop earlier turns' reasoning) has each reply found by its content: the
    end-of-turn marker the template puts after a reply is learnt after every reply, and the EOS after the last, so
    the model learns to stop; nothing of the user's turns is."""
    from transformers import AutoTokenizer

    from tunelab.run.packing import lm_blocks

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' and loop.last %}"
                               "{{ 'assistant says <think> </think> ' + m['content'] + ' ; ' }}{% else %}"
                               "{{ m['role'] + ' says ' + m['content'] + ' ; ' }}{% endif %}{% endfor %}"
                               "{% if add_generation_prompt %}assistant says {% endif %}")
    messages = [{"role": "user", "content": "was the film good"}, {"role": "assistant", "content": "very good"},
                {"role": "user", "content": "and the plot"}, {"role": "assistant", "content": "quite dull"},
                {"role": "user", "content": "the acting"}, {"role": "assistant", "content": "really bad"}]
    answered = tokenizer.apply_chat_template(messages[:4], tokenize=False)  # its reply after a think block
    assert not tokenizer.apply_chat_template(messages, tokenize=False).startswith(answered)  # not an extension
    (ids,), (labels,), _, _ = lm_blocks({"messages": [messages]}, tokenizer, 128, "assistant")
    learnt = tokenizer.decode([t for t, label in zip(ids, labels) if label != IGNORE_INDEX])
    assert learnt == "very good ; quite dull ; really bad ; [SEP]"
    ends = [i for i, t in enumerate(ids) if t == tokenizer.convert_tokens_to_ids(";")]
    assert [labels[i] != IGNORE_INDEX for i in ends] == [False, True, False, True, False, True]  # the user's: not


@pytest.mark.parametrize("loss_on", ["assistant", "all"])
def test_a_template_that_ends_every_turn_with_the_eos_gets_no_second_one(tiny_llama_dir, loss_on):
    """ChatML (smollm2's ``<|im_end|>``) ends every turn with the EOS, then a newline: the EOS put after each
    conversation came again, and the model learnt ``<|im_end|>\\n<|im_end|>``. A conversation that ends with the
    separator, whitespace aside, gets none; plain texts still get theirs."""
    from transformers import AutoTokenizer

    from tunelab.run.packing import lm_blocks

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] + ' ' + m['content'] + ' [SEP]\\n' }}{% endfor %}"
    messages = [{"role": "user", "content": "was the film good"}, {"role": "assistant", "content": "very good"}]
    (ids,), (labels,), _, _ = lm_blocks({"messages": [messages, messages]}, tokenizer, 128, loss_on)
    sep = tokenizer.sep_token_id
    assert ids.count(sep) == 4 and not any(a == b == sep for a, b in zip(ids, ids[1:]))
    assert ids[-1] == sep
    (plain,), _, _, _ = lm_blocks({"text": ["the film", "the plot"]}, tokenizer, 128)
    assert plain.count(sep) == 2


def test_keep_on_a_causal_lm_is_said_to_be_ignored(tiny_llama_dir, toy_lm_data):
    """``--keep end`` on a causal LM was accepted without a word, though packing never cuts a text: one warning."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    _, warnings = tokenize(toy_lm_data, tokenizer, 32, keep="end")
    assert [w for w in warnings if w.startswith("--keep end does not apply to a causal LM")] != []
    _, warnings = tokenize(toy_lm_data, tokenizer, 32)
    assert not any("--keep" in w for w in warnings)


def test_a_causal_lm_collator_keeps_eos_targets_where_the_pad_token_is_eos(tiny_llama_dir):
    """transformers' language-modeling collator labels the ids again and drops every token equal to the pad token:
    with pad = EOS (most decoders) the EOS between packed texts was never a target. The blocks' own labels are kept."""
    from transformers import AutoTokenizer

    from tunelab.run.padding import task_collator

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.pad_token = tokenizer.eos_token
    eos = tokenizer.eos_token_id
    batch = task_collator(tokenizer, "causal-lm", None)([{"input_ids": [7, eos, 8, 9], "labels": [7, eos, 8, 9]},
                                                         {"input_ids": [7, 8], "labels": [IGNORE_INDEX, 8]}])
    assert batch["labels"].tolist() == [[7, eos, 8, 9], [IGNORE_INDEX, 8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_a_chat_run_records_evaluates_and_scores_the_same_targets(tiny_llama_dir, tmp_path):
    """The run's recorded loss, its per-example outputs and `tunelab evaluate` of the saved model all score the
    assistant's turns alone; the artifact records it; --loss-on all scores more tokens."""
    from tunelab.run.evaluation import evaluate_artifact

    rows = [{"messages": [{"role": "user", "content": f"was film {i} good"},
                          {"role": "assistant", "content": "very good" if i % 2 else "quite dull"}]} for i in range(60)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    counts = {}
    for loss_on in ("assistant", "all"):
        out = tmp_path / loss_on
        record = train(TrainConfig(model=str(tiny_llama_dir), data=str(path), strategy="full", epochs=1, batch_size=4,
                                   max_length=16, loss_on=loss_on, forgetting=False, out=str(out)), progress=False)
        outputs = ExampleOutputs.load(out, "validation")
        assert outputs.metrics()["loss"] == pytest.approx(record["metrics"]["validation"]["loss"], rel=1e-4)
        assert json.loads((out / "model" / "tunelab.json").read_text())["loss_on"] == loss_on
        scored = evaluate_artifact(out, str(path), split="validation")
        assert scored["loss"] == pytest.approx(record["metrics"]["validation"]["loss"], rel=1e-3)
        counts[loss_on] = outputs.token_counts.sum()
    assert counts["assistant"] < counts["all"] / 2
    assert any("assistant's turns only" in note for note in record_notes(tmp_path / "assistant"))


def record_notes(out) -> list[str]:
    return json.loads((out / "metrics.json").read_text())["train_info"].get("notes", [])


def test_an_unknown_loss_on_is_refused():
    with pytest.raises(ConfigError, match="loss_on='prompt' is unknown: use assistant, all"):
        TrainConfig(loss_on="prompt").validate()


def test_a_probe_pass_names_the_trainable_weights_that_get_no_gradient(tiny_bert_dir, monkeypatch):
    """Several processes look for unused parameters after every backward pass only where a probe pass finds some
    (transformers turns the search on for every model); a model that drops layers at random cannot be told by one
    pass; the probe leaves the gradients and the mode as they were."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from tunelab.models import unused_trainable

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    assert unused_trainable(model) == []
    model.unused = torch.nn.Linear(3, 3)
    model.classifier.weight.grad = torch.ones_like(model.classifier.weight)
    model.train()
    assert unused_trainable(model) == ["unused.weight", "unused.bias"]
    assert model.training and bool((model.classifier.weight.grad == 1).all())
    model.config.layerdrop = 0.1
    assert unused_trainable(model) is None

    from tunelab.run import ranks
    from tunelab.run.training import TrainerSetup

    class Run:  # what ddp_unused reads of a prepared run
        config = TrainConfig(gradient_checkpointing=False)

    Run.model = model
    setup = TrainerSetup.__new__(TrainerSetup)
    setup.run = Run
    monkeypatch.setattr(ranks, "world_size", lambda: 2)
    del model.config.layerdrop
    assert setup.ddp_unused() == {"ddp_find_unused_parameters": True}
    setup, model.unused = TrainerSetup.__new__(TrainerSetup), torch.nn.Identity()
    setup.run = Run
    assert setup.ddp_unused() == {"ddp_find_unused_parameters": False}
    monkeypatch.setattr(ranks, "world_size", lambda: 1)
    setup = TrainerSetup.__new__(TrainerSetup)
    setup.run = Run
    assert setup.ddp_unused() == {}


def test_data_given_in_memory_is_cut_by_the_configs_limits_and_recorded_as_in_memory(tiny_bert_dir,
                                                                                     toy_classification_data, tmp_path):
    """train(config, data=...): a TaskData, or a pandas DataFrame / datasets DatasetDict read as a file would be; the
    sample limits apply to it, and the record, run_config.yaml and tunelab.json name it as data in memory, not the
    config's default dataset (which the model never saw)."""
    import pandas as pd
    import yaml

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=8, max_train_samples=20,
                         max_eval_samples=10, forgetting=False)
    n_train = len(toy_classification_data.train)
    record = train(config.replace(out=str(tmp_path / "td")), data=toy_classification_data, progress=False)
    assert len(toy_classification_data.train) == n_train  # the caller's data is left as it was
    assert record["meta_info"]["n_train"] == 20 and record["meta_info"]["n_validation"] == 10
    recorded = yaml.safe_load((tmp_path / "td" / "run_config.yaml").read_text())["data"]
    assert recorded == "in-memory toy-sentiment" and record["config"]["data"] == recorded
    assert json.loads((tmp_path / "td" / "model" / "tunelab.json").read_text())["split"]["data"] == recorded
    assert record["meta_info"]["data_fingerprint"]
    frame = pd.DataFrame({"text": list(toy_classification_data.train["text"]),
                          "label": [toy_classification_data.label_names[i] for i in toy_classification_data.train["label"]]})
    record = train(config.replace(out=str(tmp_path / "df")), data=frame, progress=False)
    assert record["meta_info"]["n_train"] == 20 and record["config"]["data"] == "in-memory Dataset (48 rows)"
    with pytest.raises(ConfigError, match="option data is a DataFrame; give a str; data in memory goes to train"):
        TrainConfig(data=frame).validate()
    from tunelab.errors import DataError

    with pytest.raises(DataError, match=r"the list given as data holds a int \(1\): give one dict per example"):
        train(config.replace(out=str(tmp_path / "bad")), data=[1, 2], progress=False)
    with pytest.raises(DataError, match="data must be a built-in name, a path, or a datasets Dataset"):
        train(config.replace(out=str(tmp_path / "bad")), data=42, progress=False)


def test_a_config_built_in_python_takes_paths_and_numpy_numbers_and_refuses_none_and_loaded_models(tiny_bert_dir,
                                                                                                     toy_classification_data,
                                                                                                     tmp_path):
    """A notebook's values: a pathlib.Path for the model, data and out (refused as 'a PosixPath; give a str') and NumPy
    numbers from a sweep (batch_size=np.int64(8): refused) are kept as str and Python numbers; model=None (a
    TypeError from pathlib deep inside loading) and a loaded model or tokenizer are one ConfigError saying what to give."""
    import numpy as np
    import yaml
    from transformers import AutoTokenizer

    config = TrainConfig(model=tiny_bert_dir, strategy="head", epochs=np.float32(1), batch_size=np.int64(8),
                         max_length=np.int64(16), forgetting=False, out=tmp_path / "run")
    assert config.problems() == [] and config.model == str(tiny_bert_dir) and type(config.batch_size) is int
    record = train(config, data=toy_classification_data, progress=False)
    assert record["config"]["model"] == str(tiny_bert_dir) and record["config"]["batch_size"] == 8
    assert yaml.safe_load((tmp_path / "run" / "run_config.yaml").read_text())["out"] == str(tmp_path / "run")
    with pytest.raises(ConfigError, match="option model is None; give a str, or leave it out for its default, 'minilm'"):
        train(config.replace(model=None, out=str(tmp_path / "none")), data=toy_classification_data, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with pytest.raises(ConfigError, match=r"option model is a BertTokenizer.*save a loaded one with "
                                          r"model.save_pretrained\(folder\).*then give model=folder"):
        TrainConfig(model=tokenizer).validate()


def test_numpy_bools_and_strings_from_a_sweep_are_taken_as_python_values(tmp_path):
    """A sweep's row (a DataFrame's or an array's values) gives np.bool_ and np.str_: overwrite=np.bool_(True) was
    refused as "option overwrite is a bool; give a bool" (NumPy ints and floats were taken), and an np.str_ model kept
    its NumPy type, which run_config.yaml could not write."""
    import numpy as np
    import yaml

    config = TrainConfig(model=np.str_("minilm"), overwrite=np.bool_(True), cache=np.False_, batch_size=np.int64(8))
    assert config.problems() == []
    assert [type(v) for v in (config.model, config.overwrite, config.cache, config.batch_size)] == [str, bool, bool, int]
    config.save(tmp_path / "run_config.yaml")
    saved = yaml.safe_load((tmp_path / "run_config.yaml").read_text())
    assert (saved["model"], saved["overwrite"], saved["cache"]) == ("minilm", True, False)


def test_the_default_folder_of_data_in_memory_is_one_shell_word_that_says_what_it_holds(toy_classification_data):
    """train(config, data=frame) without out= wrote to 'runs/minilm-in-memory Dataset (48 rows)-head': spaces and
    brackets a shell splits and globs. Every default folder name is now one shell word, still saying what it holds."""
    import shlex

    import datasets
    import pandas as pd

    from tunelab.compare.runner import default_compare_out
    from tunelab.run.training import default_out_dir, given_data

    columns = {"text": list(toy_classification_data.train["text"]), "label": list(toy_classification_data.train["label"])}
    frame = pd.DataFrame(columns)
    config = TrainConfig(model="org/tiny-bert", strategy="head")
    for data in (frame, columns, datasets.Dataset.from_pandas(frame), datasets.DatasetDict(train=datasets.Dataset.from_pandas(frame)),
                 toy_classification_data):
        folder = default_out_dir(given_data(config, data)[0])
        assert folder.parent == Path("runs") and shlex.quote(str(folder)) == str(folder), folder
        assert folder.name.startswith("tiny-bert-in-memory-") and folder.name.endswith("-head"), folder
    assert default_out_dir(given_data(config, frame)[0]) == Path("runs/tiny-bert-in-memory-Dataset-48-rows-fa931c-head")
    assert default_out_dir(config.replace(data="my data/rotten (2024) reviews.csv")) == Path(
        "runs/tiny-bert-rotten-2024-reviews.csv-02a69a-head")
    assert default_compare_out(config.replace(model="models/my model", data="rotten-tomatoes")) == Path(
        "runs/compare-my-model-76eeb0-rotten-tomatoes")


def test_two_data_names_made_one_shell_word_alike_keep_two_default_folders():
    """'my data.csv' and 'my-data.csv' both became runs/minilm-my-data.csv-head: the second run was refused the
    folder of the first (not empty: --overwrite, or --resume 'to continue the run', of other data). A name that had to
    change now ends with a short hash of it; a name that is one shell word keeps its folder as before."""
    from tunelab.compare.runner import default_compare_out
    from tunelab.run.training import default_out_dir

    config = TrainConfig(model="minilm", strategy="head")
    for make in (default_out_dir, default_compare_out):
        spaced, dashed = (make(config.replace(data=name)) for name in ("my data.csv", "my-data.csv"))
        assert spaced != dashed, spaced
    assert default_out_dir(config.replace(data="data/my-data.csv")) == Path("runs/minilm-my-data.csv-head")
    assert default_compare_out(config.replace(data="rotten-tomatoes")) == Path("runs/compare-minilm-rotten-tomatoes")


def test_a_resume_continues_a_run_started_under_the_default_folders_former_name(tmp_path, monkeypatch, caplog):
    """Default folders of a name that had to change gained a hash (255b91b): a run or comparison started before under
    runs/minilm-my-data.csv-head, resumed as it was typed (no --out), started afresh in the new folder, its checkpoints
    and finished runs left behind. Under resume the former folder is continued where only it exists."""
    from tunelab.compare.runner import default_compare_out
    from tunelab.run.training import run_out_dir

    monkeypatch.chdir(tmp_path)
    config = TrainConfig(model="minilm", data="my data.csv", strategy="head")
    former, new = Path("runs/minilm-my-data.csv-head"), Path("runs/minilm-my-data.csv-56403c-head")
    compared = Path("runs/compare-minilm-my-data.csv")
    for folder in (former, compared):
        (folder / "checkpoints").mkdir(parents=True)
    assert run_out_dir(config) == new  # a new run: today's name
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        assert run_out_dir(config.replace(resume=True)) == former
    assert "continuing in runs/minilm-my-data.csv-head" in caplog.text
    assert default_compare_out(config, resume=True) == compared
    assert default_compare_out(config) != compared
    from tunelab.run import training

    trained = []
    # _train's _start resolves the folder again, as here
    monkeypatch.setattr(training, "_train", lambda config, **kwargs: trained.append(str(run_out_dir(config))))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        training.train_record(config.replace(resume=True))
    assert trained == [str(former)] and caplog.text.count("continuing in") == 1  # train() says it once
    new.mkdir(parents=True)  # once today's folder exists it is the run's
    assert run_out_dir(config.replace(resume=True)) == new
    assert run_out_dir(config.replace(resume=True, out="elsewhere")) == Path("elsewhere")


def test_a_path_given_as_data_is_the_configs_data_not_data_in_memory(toy_classification_data, tmp_path):
    """train(config, data="reviews.csv") recorded its data as "in-memory reviews.csv (CSV, 48 rows)": run_config.yaml
    then named no file, and `tunelab train --config OUT/run_config.yaml` could not read it again. A path (str or
    Path) or a built-in name given as data= is now the config's data, as compare(data=...) and recommend take it."""
    from tunelab.run.training import given_data

    path = tmp_path / "reviews.csv"
    frame = toy_classification_data.train.to_pandas()
    frame.assign(label=[toy_classification_data.label_names[y] for y in frame["label"]]).to_csv(path, index=False)
    for given in (str(path), path):
        config, data = given_data(TrainConfig(max_train_samples=20), given)
        assert config.data == str(path) and data.source.startswith("reviews.csv")
        assert len(data.train) == 20  # cut by the config's limits as loaded data is


def test_a_decoder_saved_without_its_language_model_head_is_refused_for_causal_lm(toy_lm_data, tmp_path):
    """A bare decoder (MistralModel, as embedding models ship) has no LM head and none tied to its embeddings:
    transformers draws one at random, which every frozen-head strategy would train through. Refused in one line;
    the same decoder with tied embeddings (the head is the embeddings) trains."""
    import torch
    from transformers import MistralConfig, MistralModel

    from conftest import TINY_DIMS, tiny_tokenizer
    from tunelab.errors import ModelError

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    for tied in (False, True):
        config = MistralConfig(vocab_size=tokenizer.vocab_size, num_key_value_heads=2, max_position_embeddings=128,
                               tie_word_embeddings=tied, pad_token_id=tokenizer.pad_token_id, **TINY_DIMS)
        torch.manual_seed(0)
        folder = tmp_path / f"bare-{tied}"
        MistralModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        run = TrainConfig(model=str(folder), strategy="lora", epochs=1, batch_size=8, max_length=16, forgetting=False,
                          out=str(tmp_path / f"out-{tied}"))
        if tied:
            assert train(run, data=toy_lm_data, progress=False)["metrics"]["validation"]["perplexity"] > 0
        else:
            with pytest.raises(ModelError, match=r"holds no language-model head: lm_head.weight is not among its weights"):
                train(run, data=toy_lm_data, progress=False)
            assert not (tmp_path / "out-False").exists()


def test_train_leaves_the_callers_random_streams_where_they_were(tiny_bert_dir, toy_classification_data, tmp_path):
    """A run seeds Python's, NumPy's and torch's generators; the caller's draws after train() continue their own."""
    import random

    import numpy as np
    import torch

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = draws()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    train(TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=16, forgetting=False,
                      out=str(tmp_path / "o")), data=toy_classification_data, progress=False)
    assert draws() == expected


def test_a_text_exactly_as_long_as_max_length_is_not_counted_as_truncated():
    """'[CLS] good film [SEP]' is 4 tokens: at --max-length 4 it keeps every one; only the longer texts are cut."""
    from datasets import Dataset

    from conftest import tiny_tokenizer
    from tunelab.data import TaskData

    texts = ["good film"] * 5 + ["good film was very good"] * 3
    ds = Dataset.from_dict({"text": texts, "label": [0, 1] * 4})
    data = TaskData(task="classification", train=ds, validation=ds, test=ds, label_names=["a", "b"], fingerprint="x4")
    _, warnings = tokenize(data, tiny_tokenizer(), 4)
    assert warnings[0].startswith("3 of 8 train texts were truncated to 4 tokens")


def test_only_the_texts_that_reached_max_length_are_tokenized_again_to_count_the_cut_ones():
    """Counting the cut texts tokenized every text of every split a second time, whole: a split of long documents
    paid for two whole passes in every run. Only a text whose encoding reached the limit can have been cut."""
    from datasets import Dataset

    from conftest import tiny_tokenizer
    from tunelab.data import TaskData

    texts = ["good film"] * 5 + ["good film was very good"] * 3
    ds = Dataset.from_dict({"text": texts, "label": [0, 1] * 4})
    data = TaskData(task="classification", train=ds, validation=ds, test=ds, label_names=["a", "b"], fingerprint="x5")
    tokenizer, whole = tiny_tokenizer(), []
    encode = type(tokenizer).__call__

    def spy(self, text, *args, **kwargs):
        if kwargs.get("truncation") is False:
            whole.extend(text)
        return encode(self, text, *args, **kwargs)

    from unittest import mock

    with mock.patch.object(type(tokenizer), "__call__", spy):
        _, warnings = tokenize(data, tokenizer, 5)
    assert warnings[0].startswith("3 of 8 train texts were truncated to 5 tokens")
    assert whole == ["good film was very good"] * 9  # three long texts in each of the three splits, nothing else


def test_truncated_text_pairs_are_counted_as_pairs():
    """--text-column premise,hypothesis: each example is a pair, and the warning said '3 of 8 train texts'."""
    from datasets import Dataset

    from conftest import tiny_tokenizer
    from tunelab.data import TaskData

    ds = Dataset.from_dict({"text": ["good film"] * 8, "text_pair": ["good"] * 5 + ["good film was very good"] * 3,
                            "label": [0, 1] * 4})
    data = TaskData(task="classification", train=ds, validation=ds, test=ds, label_names=["a", "b"], fingerprint="p4")
    _, warnings = tokenize(data, tiny_tokenizer(), 6)
    assert data.text_pairs and warnings[0].startswith("3 of 8 train pairs (each cut longest first) were truncated to 6")


def test_a_causal_lm_interval_resamples_texts_not_the_blocks_they_were_packed_into(tiny_llama_dir, toy_lm_data,
                                                                                    tmp_path):
    """Blocks of one text are not independent: each block's outputs carry the text it starts in, and the intervals
    and paired tests resample texts (summed per text), with the same totals."""
    import numpy as np
    from datasets import Dataset

    from tunelab.advice.verdict import example_results
    from tunelab.data import TaskData

    def longer(ds):  # texts of four sentences: several blocks of 8 tokens each
        rows = list(ds["text"])
        return Dataset.from_dict({"text": [" ".join(rows[i : i + 4]) for i in range(0, len(rows), 4)] * 2})

    data = TaskData(task="causal-lm", train=longer(toy_lm_data.train), validation=longer(toy_lm_data.validation),
                    test=longer(toy_lm_data.test), source="toy-text-long", fingerprint="toy-text-long")
    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora", epochs=1, batch_size=8, max_length=8,
                         forgetting=False, out=str(tmp_path / "o"))
    train(config, data=data, progress=False)
    outputs = ExampleOutputs.load(tmp_path / "o", "validation")
    assert outputs.texts is not None and len(outputs.texts) == len(outputs) > 2 * len(data.validation)
    assert np.all(np.diff(outputs.texts) >= 0) and outputs.texts.max() < len(data.validation)
    texts = outputs.by_text()
    assert len(texts) == len(np.unique(outputs.texts))
    assert texts.loss_sums.sum() == pytest.approx(outputs.loss_sums.sum())
    assert texts.metrics()["loss"] == pytest.approx(outputs.metrics()["loss"])

    class Summary:  # what example_results reads of a strategy's runs
        runs = [type("Run", (), {"config": {"out": str(tmp_path / "o")}})()]

    assert example_results(Summary, "validation").n_examples == len(texts)


def test_the_python_api_says_nothing_of_the_checkpoints_it_loads_for_its_own_measures(tiny_bert_dir, tmp_path):
    """``tunelab.train`` in a script (a fresh interpreter, no CLI to quiet the libraries): the forgetting measure's
    masked-LM load of a checkpoint without that head printed transformers' load report table and its "checkpoint
    seem corrupted" line, and sorting the evaluation splits pyarrow's deprecation of how datasets sorts; tunelab says
    what matters itself."""
    import subprocess
    import sys

    rows = "".join(f"text {i} {'good fine' if i % 2 else 'bad awful'},{'pos' if i % 2 else 'neg'}\n" for i in range(80))
    (tmp_path / "d.csv").write_text("text,label\n" + rows)
    script = ("import tunelab\n"
              f"tunelab.train(tunelab.TrainConfig(model={str(tiny_bert_dir)!r}, data={str(tmp_path / 'd.csv')!r}, "
              f"strategy='head', epochs=1, batch_size=8, out={str(tmp_path / 'o')!r}), progress=False)\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOAD REPORT" not in proc.stderr and "null_placement" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("strategy", ["prompt-tuning", "lora"])
def test_evaluate_scores_a_causal_lm_split_as_its_run_scored_it(strategy, tiny_llama_dir, toy_lm_data, tmp_path):
    """``tunelab evaluate`` on the split a run held out gives the run's own test loss: the learnt next tokens of each
    block, not also the first token that a soft prompt's last virtual token would predict (peft's own loss counts
    it; the run's evaluation and every other strategy never predict a block's first token)."""
    from tunelab.run.evaluation import evaluate_artifact

    text = tmp_path / "corpus.jsonl"
    text.write_text("".join(json.dumps({"text": t}) + "\n" for t in [*toy_lm_data.train["text"], *toy_lm_data.test["text"]]))
    config = TrainConfig(model=str(tiny_llama_dir), data=str(text), task="causal-lm", strategy=strategy, epochs=1,
                         batch_size=8, max_length=16, num_virtual_tokens=4, forgetting=False, out=str(tmp_path / "o"))
    record = train(config, progress=False)
    scored = evaluate_artifact(tmp_path / "o", str(text), split="test")
    assert scored["loss"] == pytest.approx(record["metrics"]["test"]["loss"], rel=1e-5)


def test_train_without_progress_draws_no_bar_of_the_libraries_either(tiny_bert_dir, toy_classification_data, tmp_path,
                                                                     capsys):
    """train(progress=False) kept datasets' and transformers' own bars on ("tokenizing train: 100%|...") while
    train(progress=True) turned them off for its own display: a script or notebook that asked for quiet got them."""
    import datasets

    datasets.enable_progress_bars()
    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=8, lr=0.05, cache=False,
                         out=str(tmp_path / "q"))
    capsys.readouterr()
    train(config, data=toy_classification_data, progress=False)
    captured = capsys.readouterr()
    assert "tokenizing" not in captured.err + captured.out, captured.err[-500:]
    assert datasets.is_progress_bar_enabled()  # the caller's setting is restored


def _toy_pairs(fingerprint: str):
    """A toy text-pair task (5-word texts, 3-word second texts, labels alternating): 32 / 16 / 16 rows."""
    import random

    from datasets import Dataset

    from tunelab.data import TaskData

    rng = random.Random(0)
    words = "good bad film story long short".split()

    def split(n):
        return Dataset.from_dict({"text": [" ".join(rng.choices(words, k=5)) for _ in range(n)],
                                  "text_pair": [" ".join(rng.choices(words, k=3)) for _ in range(n)],
                                  "label": [i % 2 for i in range(n)]})

    return TaskData(task="classification", train=split(32), validation=split(16), test=split(16), label_names=["no", "yes"],
                    source="toy-pairs", fingerprint=fingerprint)


def test_a_run_that_fails_after_training_started_leaves_its_fresh_folder_free_for_the_retry(
        tiny_bert_dir, toy_classification_data, tmp_path):
    """A run that diverged (non-finite loss) in a folder it created left progress.json (and its tensorboard/ events)
    there, so the retry with a sane --lr was refused: 'output folder ... is not empty: pass --overwrite'."""
    from tunelab.errors import TrainingError

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=4, forgetting=False,
                         out=str(tmp_path / "run"), report_to="tensorboard")
    with pytest.raises(TrainingError, match="non-finite"):
        train(config.replace(lr=1e6, head_lr=1e6), data=toy_classification_data, progress=False)
    assert not (tmp_path / "run").exists(), sorted(p.name for p in (tmp_path / "run").rglob("*"))
    assert train(config, data=toy_classification_data, progress=False)["run_info"]["status"] == "success"


def test_evaluate_takes_data_in_memory_as_train_does(head_record, toy_classification_data, caplog):
    """evaluate_artifact(out, frame) died with OSError 'File name too long' (the frame's str() taken for a path): data
    in memory is scored as train reads it, and named by what it is in the warning that it is other data."""
    import pandas as pd

    from tunelab.run.evaluation import evaluate_artifact

    _, out = head_record
    names = toy_classification_data.label_names
    frame = pd.DataFrame([{"text": row["text"], "label": names[row["label"]]} for row in toy_classification_data.test])
    with caplog.at_level("WARNING", logger="tunelab"):
        scored = evaluate_artifact(out, frame)
    assert scored["split"] == "test" and scored["examples"] > 0 and 0.0 <= scored["accuracy"] <= 1.0
    assert "in-memory Dataset (16 rows) is not the data this model trained on" in caplog.text
    assert evaluate_artifact(out, frame.to_dict("records"), split="all")["examples"] == 16


@pytest.mark.parametrize("setting", [
    dict(strategy="lora"),
    dict(strategy="lora", document_mask=False),
    dict(strategy="prompt-tuning", num_virtual_tokens=4),
    dict(strategy="last-n", layers=1),  # the frozen-layer cache
])
def test_each_short_text_packed_into_a_block_is_a_unit_of_its_own(tiny_llama_dir, toy_lm_data, tmp_path, setting):
    """Blocks of several short texts were summed per the text each block starts in: the texts inside a block were
    folded into that one, and 12 validation texts in 3 blocks were resampled as 3 "examples". Each predicted token's
    loss now counts with the text it belongs to (the EOS after a text with that text): every text with a predicted
    token is a unit, a text inside one block counts its tokens and its EOS, and the totals are the Trainer's. The
    split's last, shorter block was dropped (the texts only in it never scored): it is scored, every text is counted
    (the record's ``scored_texts``), and ``tunelab evaluate`` scores the same blocks."""
    import numpy as np

    from conftest import tiny_tokenizer

    length = 28  # 12 texts of 8 tokens: 3 blocks of 28 and a last one of 12
    config = TrainConfig(model=str(tiny_llama_dir), epochs=1, batch_size=8, max_length=length, forgetting=False,
                         cache_dir=str(tmp_path / "features"), out=str(tmp_path / "o"), **setting)
    record = train(config, data=toy_lm_data, progress=False)
    if setting["strategy"] == "last-n":
        assert record["train_info"]["cache"]["used"]
    tokenizer = tiny_tokenizer()  # each text and its EOS, one after another
    sizes = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in toy_lm_data.validation["text"]]
    starts = np.cumsum([0] + sizes[:-1])
    assert sum(sizes) % length  # a partial last block, which held texts that were never scored
    scored = list(range(len(sizes)))  # every text of the split: the last, shorter block is scored too
    outputs = ExampleOutputs.load(tmp_path / "o", "validation")
    texts = outputs.by_text()
    assert len(outputs) < len(scored) == len(texts) and list(texts.texts) == scored
    assert record["meta_info"]["scored_texts"] == {"validation": len(sizes), "test": len(toy_lm_data.test)}
    inside = [i for i in scored if starts[i] % length and starts[i] // length == (starts[i] + sizes[i] - 1) // length]
    assert inside and [texts.token_counts[i] for i in inside] == [sizes[i] for i in inside]
    assert texts.token_counts.sum() == outputs.token_counts.sum()
    assert texts.loss_sums.sum() == pytest.approx(outputs.loss_sums.sum(), rel=1e-6)  # float32 sums
    assert texts.metrics()["loss"] == pytest.approx(record["metrics"]["validation"]["loss"], rel=1e-6)
    # tunelab evaluate on the same texts (a file, every row): the same blocks, loss, and texts scored
    from tunelab.run.evaluation import evaluate_artifact

    (tmp_path / "held.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in toy_lm_data.validation["text"]))
    evaluated = evaluate_artifact(tmp_path / "o", str(tmp_path / "held.jsonl"), split="all")
    assert evaluated["examples"] == len(sizes) and evaluated["scored_texts"] == len(scored)
    assert evaluated["blocks"] == len(outputs) and evaluated["loss"] == pytest.approx(record["metrics"]["validation"]["loss"], rel=1e-5)


@pytest.mark.parametrize(("task", "strategy"), [("classification", "full"), ("classification", "head"), ("causal-lm", "full")])
def test_gradient_accumulation_trains_the_step_the_whole_batch_trains(task, strategy, tiny_bert_dir, tiny_llama_dir,
                                                                       toy_classification_data, toy_lm_data, tmp_path):
    """Batch 4 x accumulation 2 is batch 8 x accumulation 1 (what --auto-batch-size's retry promises): one SGD step, no
    clipping, gives the same weights and logs the same loss, for a classifier (``head``: its head trained on the
    frozen-layer cache's features) and a causal LM whose blocks hold few or many targets. transformers passes
    ``num_items_in_batch`` to every model whose ``forward`` takes ``**kwargs`` and then leaves the loss undivided by
    the accumulation; a classifier's loss is a mean over its batch that ignores it, and came out (gradient and logged
    loss) twice as large."""
    from tunelab.run.training import TrainerSetup, _training_datasets, cache_plan, prepare

    model_dir, data = (tiny_bert_dir, toy_classification_data) if task == "classification" else (tiny_llama_dir, toy_lm_data)
    config = TrainConfig(model=str(model_dir), strategy=strategy, batch_size=8, max_length=16, cache_dir=str(tmp_path / "cache"))
    run = prepare(config, data)  # max_length 16: a causal LM's 40 texts make 8 blocks and more
    for module in run.model.modules():  # the same rows must give the same loss: no dropout masks drawn
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    initial = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    ds = _training_datasets(run, TrainerSetup(run, tmp_path / "setup").collator(), cache_plan(run))
    assert ds.cache_info["used"] == (strategy == "head")
    rows = ds.train.select(range(8))  # one step takes them all, in whatever order the sampler draws
    if task == "causal-lm":  # targets as a conversation's replies leave them: one block holds most, so halves differ
        rows = rows.map(lambda row, i: {"labels": row["labels"] if i == 7 else row["labels"][:3] + [IGNORE_INDEX] * 13},
                        with_indices=True)
    results = []
    for batch, accumulation in ((8, 1), (4, 2)):
        with torch.no_grad():
            for name, param in run.model.named_parameters():
                param.copy_(initial[name])
        setup = TrainerSetup(run, tmp_path / f"{batch}x{accumulation}")
        trainer = setup.trainer(rows, None, ds.collator, model=ds.model, optim="sgd", max_steps=1, max_grad_norm=0.0,
                                per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                                lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, eval_strategy="no",
                                save_strategy="no")
        trainer.train()
        loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
        results.append((loss, {n: p.detach() - initial[n] for n, p in run.model.named_parameters()}))
    ds.restore(run)
    (whole_loss, whole_step), (accumulated_loss, accumulated_step) = results
    assert accumulated_loss == pytest.approx(whole_loss, rel=1e-5)
    assert any(float(step.abs().max()) > 0 for step in whole_step.values())
    for name, step in whole_step.items():
        torch.testing.assert_close(accumulated_step[name], step, rtol=1e-4, atol=1e-7, msg=name)
