"""Artifacts: out-folder rules, atomic writes, loading without tunelab, and predict."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
import yaml

from tunelab.config import TrainConfig
from tunelab.errors import TunelabError
from tunelab.run.artifacts import (
    MODEL_DIR,
    atomic_dir,
    find_model_dir,
    load_artifact,
    predict,
    prepare_out_dir,
)
from tunelab.run.training import train


def test_a_used_folder_is_refused_unless_overwrite_and_overwrite_keeps_user_files(tmp_path):
    out = tmp_path / "run"
    (out / MODEL_DIR).mkdir(parents=True)
    (out / MODEL_DIR / "weights.bin").write_text("old")
    (out / "metrics.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TunelabError, match=r"not empty: pass overwrite=True.*resume=True.*out="):
        prepare_out_dir(out, overwrite=False, resume=False)
    assert (out / "metrics.json").exists()
    # a model/ folder no run wrote (no tunelab.json), a file of the user's among the checkpoints or the outputs: refused
    (out / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoints" / "my.ckpt").write_text("mine")
    (out / "outputs").mkdir()
    (out / "outputs" / "important.csv").write_text("mine")
    with pytest.raises(TunelabError, match=rf"^overwrite=True would delete {re.escape(str(out / MODEL_DIR / 'weights.bin'))} and 2 more, "
                                           r"which no tunelab run wrote: move them out of the output folder, or choose another out="):
        prepare_out_dir(out, overwrite=True, resume=False)
    assert (out / MODEL_DIR / "weights.bin").exists() and (out / "checkpoints" / "my.ckpt").exists()
    (out / "checkpoints" / "my.ckpt").unlink()
    (out / "outputs" / "important.csv").unlink()
    (out / "outputs" / "validation.npz").write_text("")
    (out / MODEL_DIR / "tunelab.json").write_text("{}")  # a run's model folder
    # the replaced run's TensorBoard events go too (kept, its curves were drawn beside the new run's); a file of the
    # user's there is refused as elsewhere
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "events.out.tfevents.1.host").write_text("")
    (out / "tensorboard" / "my-notes.md").write_text("mine")
    with pytest.raises(TunelabError, match=r"overwrite=True would delete .*tensorboard/my-notes.md, which no tunelab run"):
        prepare_out_dir(out, overwrite=True, resume=False)
    (out / "tensorboard" / "my-notes.md").unlink()
    prepare_out_dir(out, overwrite=True, resume=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(TunelabError, match="is a file"):
        prepare_out_dir(out / "notes.txt", overwrite=True, resume=False)


def test_atomic_dir_leaves_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first" and (target / ".tunelab-complete").exists()
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left behind
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == [".tunelab-complete", "b.txt"]


def test_a_folder_written_atomically_is_as_readable_as_mkdir_makes_it(tmp_path):
    """model/, checkpoints and the shared cache go through a tempfile folder, which is 0700: a team's shared run or
    cache was unreadable to everyone but its writer, while the files inside were made readable."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "a.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_find_model_dir_accepts_the_run_or_model_folder_only(tmp_path):
    model = tmp_path / "run" / MODEL_DIR
    model.mkdir(parents=True)
    (model / "tunelab.json").write_text("{}")
    assert find_model_dir(tmp_path / "run") == model == find_model_dir(model)
    with pytest.raises(TunelabError, match="not a tunelab artifact"):
        find_model_dir(tmp_path)
    with pytest.raises(TunelabError, match="does not exist"):
        find_model_dir(tmp_path / "nope")
    killed = tmp_path / "killed"  # a run stopped before it wrote its model: say how to finish it
    (killed / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (killed / "run_config.yaml").write_text("strategy: head\n")
    with pytest.raises(TunelabError, match=r"did not finish, so it has no model yet \(last checkpoint: checkpoint-2\): "
                                           r"finish it with `tunelab train --config .*run_config.yaml --resume`"):
        find_model_dir(killed)
    # a comparison's folder (said "no tunelab.json"): its runs hold the models, the recommended one named first
    comparison = tmp_path / "cmp"
    for run in ("head", "lora-s42", "lora-s43"):
        (comparison / "runs" / run / MODEL_DIR).mkdir(parents=True)
        (comparison / "runs" / run / MODEL_DIR / "tunelab.json").write_text("{}")
    (comparison / "recommendation.json").write_text('{"strategy": "lora"}')
    with pytest.raises(TunelabError, match=r"cmp is a comparison's folder: each run's model is under .*runs/<run>, e.g. "
                                           r".*runs/lora-s42 \(the recommended lora\); 3 run\(s\) there hold one: head, "
                                           r"lora-s42, lora-s43$"):
        find_model_dir(comparison)


@pytest.fixture(scope="module")
def lm_run(tiny_llama_dir, toy_lm_data, tmp_path_factory):
    """A full fine-tune of the tiny Llama on toy text."""
    out = tmp_path_factory.mktemp("art") / "lm"
    config = TrainConfig(model=str(tiny_llama_dir), strategy="full", lr=1e-3, epochs=1, batch_size=8, max_length=16, out=str(out))
    train(config, data=toy_lm_data, progress=False)
    return out


def test_causal_lm_predict_is_the_greedy_continuation_of_the_plain_model(lm_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = predict(lm_run, ["the film was", "a very"], max_new_tokens=5)
    model = AutoModelForCausalLM.from_pretrained(lm_run / MODEL_DIR).eval()
    tokenizer = AutoTokenizer.from_pretrained(lm_run / MODEL_DIR)
    for row in rows:  # the prompt tokenized as training tokenizes its texts (no special tokens)
        enc = tokenizer(row["text"], return_tensors="pt", return_token_type_ids=False, add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        whole = tokenizer.decode(ids[0], skip_special_tokens=True)
        prompt = tokenizer.decode(ids[0, : enc["input_ids"].shape[1]], skip_special_tokens=True)
        assert whole.startswith(prompt) and row["generated"] == whole[len(prompt) :]
    info = json.loads((lm_run / MODEL_DIR / "tunelab.json").read_text())
    assert info["task"] == "causal-lm" and info["format"] == "transformers" and info["max_length"] == 16


def test_an_adapter_whose_base_model_moved_says_where_to_fix_it(tiny_bert_dir, toy_classification_data, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_bert_dir, base)
    config = TrainConfig(model=str(base), strategy="lora", epochs=1, batch_size=16, out=str(tmp_path / "o"))
    train(config, data=toy_classification_data, progress=False)
    model, _, info = load_artifact(tmp_path / "o")
    assert info["format"] == "peft" and model.config.id2label == {0: "neg", 1: "pos"}
    shutil.rmtree(base)
    with pytest.raises(TunelabError, match=r"no longer exists.*adapter_config\.json"):
        load_artifact(tmp_path / "o")


def test_ia3_merges_into_a_bert_whose_pooler_trains_with_the_head(tiny_bert_dir, toy_classification_data, tmp_path):
    """IA3 --merge on a BERT classifier (its pooler trains whole, beside the head): peft's IA3 merge had failed on the
    pooler after training and saved nothing. The merged model gives the adapter's logits."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = TrainConfig(model=str(tiny_bert_dir), strategy="ia3", merge=True, lr=0.05, epochs=1, batch_size=16,
                         out=str(tmp_path / "o"))
    train(config, data=toy_classification_data, progress=False)
    adapter, _, _ = load_artifact(tmp_path / "o")
    merged_dir = tmp_path / "o" / MODEL_DIR / "merged"
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    enc = AutoTokenizer.from_pretrained(merged_dir)(["good film", "an awful and boring plot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(merged(**enc).logits, adapter(**enc).logits, rtol=1e-5, atol=1e-5)
        untrained = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2).eval()
        assert not torch.allclose(untrained.bert.pooler.dense.weight, merged.bert.pooler.dense.weight)  # the trained pooler
    # the card shows the merged folder, its snippet loads it, and tunelab predicts with it as with the adapter
    import re

    card = (tmp_path / "o" / MODEL_DIR / "README.md").read_text()
    snippet = re.search(r"`merged/` in this folder.*?```python\n(.*?)```", card, re.S).group(1)
    scope = {"THIS_FOLDER": str(tmp_path / "o" / MODEL_DIR)}
    exec(snippet, scope)
    assert type(scope["model"]).__name__ == "BertForSequenceClassification"
    texts = ["good film", "an awful and boring plot"]
    for a, b in zip(predict(merged_dir, texts), predict(tmp_path / "o", texts)):
        assert a["label"] == b["label"] and a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    # a peft user merges the adapter the usual way (the card's loading line, then merge_and_unload): peft had failed
    # on the pooler listed whole in modules_to_save (AttributeError: 'BertPooler' object has no attribute 'weight')
    loading = re.search(r"or in one call.*?```python\n(.*?)```", card, re.S).group(1)
    exec(loading, scope)
    by_peft = scope["model"].eval().merge_and_unload()
    assert by_peft.config.label2id == {"neg": 0, "pos": 1} and by_peft.config.id2label == {0: "neg", 1: "pos"}
    with torch.no_grad():
        torch.testing.assert_close(by_peft(**enc).logits, merged(**enc).logits, rtol=1e-5, atol=1e-5)


def test_a_merged_dora_run_gives_the_adapters_logits_and_its_card_counts_what_trained(tiny_llama_dir, toy_lm_data, tmp_path):
    """DoRA --merge on a decoder: the merged folder computes the adapter's logits, and the model card counts the
    parameters that trained. The card was written after the merge had folded the adapters into the weights in place,
    and read "Trainable parameters: 0 of 32,224 (0.00 %)"."""
    from transformers import AutoModelForCausalLM

    from conftest import assert_same_logits

    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora", use_dora=True, merge=True, epochs=1, batch_size=8,
                         max_length=32, forgetting=False, out=str(tmp_path / "o"))
    record = train(config, data=toy_lm_data, progress=False)
    folder = tmp_path / "o" / MODEL_DIR
    assert json.loads((folder / "adapter_config.json").read_text())["use_dora"] is True
    adapter, _, _ = load_artifact(tmp_path / "o")
    merged = AutoModelForCausalLM.from_pretrained(folder / "merged").eval()
    assert_same_logits(merged, adapter, folder, ["the film was good", "an awful plot"], rtol=1e-5, atol=1e-5)
    trained = record["train_info"]["trainable_params"]
    assert trained > 0
    assert f"Trainable parameters: {trained:,} of " in (folder / "README.md").read_text()


def test_a_bf16_base_merges_onto_the_float32_base_the_adapter_loads_onto(tiny_llama_dir, toy_lm_data, tmp_path, monkeypatch):
    """--base-dtype bf16 --merge: merged/ computes what the saved adapter does on its float32 base (predict, peft).
    The merge had folded the adapters into the bfloat16-rounded weights the run held in memory: on this tiny Llama
    merged/'s logits were 1e-3 away from the adapter's."""
    from transformers import AutoModelForCausalLM

    from conftest import assert_same_logits
    from tunelab import hardware

    monkeypatch.setattr(hardware, "native_bf16", lambda *a, **k: True)  # the option's refusal elsewhere; the same arithmetic
    # the merge loads the float32 base once, while no other model holds weights (it held the run's, merged in memory too)
    import gc

    from peft import PeftModel

    from tunelab.run import artifacts

    held = []

    def load(*args, **kwargs):
        held.extend(m for m in gc.get_objects() if isinstance(m, PeftModel) and any(not p.is_meta for p in m.parameters()))
        return load_artifact(*args, **kwargs)

    monkeypatch.setattr(artifacts, "load_artifact", load)
    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora", base_dtype="bf16", merge=True, lr=0.01, epochs=1,
                         batch_size=8, max_length=32, forgetting=False, out=str(tmp_path / "o"))
    train(config, data=toy_lm_data, progress=False)
    assert held == []
    folder = tmp_path / "o" / MODEL_DIR
    adapter, _, _ = load_artifact(tmp_path / "o")
    merged = AutoModelForCausalLM.from_pretrained(folder / "merged").eval()
    assert_same_logits(merged, adapter, folder, ["the film was good", "an awful plot"], rtol=1e-5, atol=1e-5)
    assert (folder / "merged" / "tokenizer.json").exists() and json.loads((folder / "merged" / "tunelab.json").read_text())["format"] == "transformers"
    # its card's metrics are the bfloat16-held base's, which the float32 base this folder loads onto does not give
    for card in (folder / "README.md", folder / "merged" / "README.md"):
        assert "with its frozen base held in bfloat16 (`--base-dtype bf16`)" in card.read_text(), card


def test_a_merge_that_fails_keeps_the_trained_adapter(tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch, caplog):
    from peft import LoraModel

    def fail(self, *args, **kwargs):
        raise RuntimeError("no merge today")

    monkeypatch.setattr(LoraModel, "merge_and_unload", fail)
    config = TrainConfig(model=str(tiny_bert_dir), strategy="lora", merge=True, epochs=1, batch_size=16, out=str(tmp_path / "o"))
    with caplog.at_level("WARNING", logger="tunelab"):
        train(config, data=toy_classification_data, progress=False)
    assert "--merge failed (RuntimeError: no merge today); the trained adapter is saved" in caplog.text
    assert not (tmp_path / "o" / MODEL_DIR / "merged").exists()
    _, _, info = load_artifact(tmp_path / "o")
    assert info["format"] == "peft"


def test_classification_predict_ranks_every_label(tiny_bert_dir, toy_classification_data, tmp_path):
    config = TrainConfig(model=str(tiny_bert_dir), strategy="bitfit", epochs=1, batch_size=16, out=str(tmp_path / "o"))
    train(config, data=toy_classification_data, progress=False)
    texts = [f"text number {i}" for i in range(5)]
    rows = predict(tmp_path / "o", texts, batch_size=2)  # several batches
    assert [r["text"] for r in rows] == texts
    for row in rows:
        probs = list(row["probabilities"].values())
        assert set(row["probabilities"]) == {"neg", "pos"} and sum(probs) == pytest.approx(1.0)
        assert probs == sorted(probs, reverse=True) and row["label"] == next(iter(row["probabilities"]))
    # a damaged folder is one line naming what could not be read, not a traceback
    import shutil as sh

    damaged = tmp_path / "damaged"
    sh.copytree(tmp_path / "o", damaged)
    weights = next((damaged / "model").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TunelabError, match=r"cannot load the model in .*SafetensorError.*damaged or missing"):
        predict(damaged, ["text"])
    (damaged / "model" / "tunelab.json").write_text("{bad")
    with pytest.raises(TunelabError, match=r"JSONDecodeError.*damaged or missing"):
        predict(damaged, ["text"])
    # one string is one text, as a pipeline takes it (not one prediction per character)
    assert predict(tmp_path / "o", "text number 0") == rows[:1]
    # from Python as from the command line: a bad count is one line, not range()'s or generate()'s ValueError
    with pytest.raises(TunelabError, match=r"^batch_size= must be a whole number of at least 1, got 0"):
        predict(tmp_path / "o", texts, batch_size=0)
    with pytest.raises(TunelabError, match=r"^max_new_tokens= must be a whole number of at least 1, got -1"):
        predict(tmp_path / "o", texts, max_new_tokens=-1)
    from tunelab.run.evaluation import evaluate_artifact

    with pytest.raises(TunelabError, match=r"^split='dev' is not a split: use one of train, validation, test, all"):
        evaluate_artifact(tmp_path / "o", "rotten-tomatoes", split="dev")  # was a bare KeyError: 'dev'
    with pytest.raises(TunelabError, match=r"^batch_size= must be a whole number of at least 1, got 0"):
        evaluate_artifact(tmp_path / "o", "rotten-tomatoes", batch_size=0)
    with pytest.raises(TunelabError, match="a text or a list of texts"):
        predict(tmp_path / "o", [3])


def test_a_decoder_transformers_has_no_classifier_for_classifies_with_the_generic_one(toy_classification_data, tmp_path):
    """Granite (like Cohere, OLMoE, LFM2, ... in transformers 5) has no sequence-classification class: tunelab gives
    it the one transformers defines for Llama and Qwen2 (GenericForSequenceClassification on GranitePreTrainedModel),
    so the checkpoint's body loads under its own prefix (not re-initialised), adapters and the head train, and the
    artifact reloads, in tunelab and in plain transformers once the class is registered, with the same logits."""
    import torch
    from transformers import AutoModelForSequenceClassification, GraniteConfig, GraniteForCausalLM

    from conftest import TINY_DIMS, tiny_tokenizer
    from tunelab.models import load_model
    from tunelab.models.loading import register_generic_classifier
    from tunelab.run.artifacts import load_artifact

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    config = GraniteConfig(vocab_size=tokenizer.vocab_size, num_key_value_heads=2, max_position_embeddings=128,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=2, eos_token_id=3, **TINY_DIMS)
    torch.manual_seed(0)
    folder = tmp_path / "granite"
    GraniteForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    lm = GraniteForCausalLM.from_pretrained(folder)
    model, _ = load_model(str(folder), task="classification", label_names=["neg", "pos"])
    assert type(model).__name__ == "GraniteForSequenceClassification"
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, lm.model.layers[0].self_attn.q_proj.weight)
    for strategy in ("head", "lora"):
        out = tmp_path / strategy
        train(TrainConfig(model=str(folder), strategy=strategy, epochs=1, batch_size=16, out=str(out)),
              data=toy_classification_data, progress=False)
        tuned, tok, info = load_artifact(out)
        enc = tok(["good film", "a dull and weak story"], padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = tuned(**enc).logits
        assert predict(out, ["good film"])[0]["probabilities"]["pos"] == pytest.approx(
            float(logits[0].softmax(-1)[1]), abs=1e-5)
        card = (out / "model" / "README.md").read_text()
        assert "register_generic_classifier('granite')" in card
        # a pipeline on a peft folder by name loads the base without the label names (LABEL_0): the loaded model goes
        assert ("pipeline(\"text-classification\", model=model, tokenizer=THIS_FOLDER, truncation=True)`, with the "
                "model loaded as above" if strategy == "lora" else
                "pipeline(\"text-classification\", model=THIS_FOLDER, truncation=True)") in card
        if strategy == "head":  # a whole model: plain transformers loads it once the class is registered
            assert register_generic_classifier("granite")
            plain = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
            with torch.inference_mode():
                assert torch.allclose(plain(**enc).logits, logits, atol=1e-5)


def test_the_model_cards_load_snippet_runs_for_a_decoder_without_a_pad_token(tmp_path):
    """The card's "Load it" code, executed as written (BASE and THIS_FOLDER bound), loads a 3-class LoRA adapter of a
    GPT-2 whose tokenizer and config have no pad token (tunelab pads with the end-of-text token), classifies a
    padded batch of two, and gives tunelab's own logits. With only id2label the base config had no pad id, and
    GPT-2's classifier refuses batches larger than one without it."""
    import random
    import re

    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel

    from conftest import _NEGATIVE, _POSITIVE, _sentence, tiny_tokenizer
    from tunelab.data import TaskData
    from tunelab.run.artifacts import load_artifact

    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    tokenizer.eos_token = "[SEP]"
    torch.manual_seed(0)
    base = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                               bos_token_id=3, eos_token_id=3)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    rng = random.Random(0)

    def split(n: int) -> Dataset:
        labels = [i % 3 for i in range(n)]
        words = (_NEGATIVE, _POSITIVE, _NEGATIVE + _POSITIVE)
        return Dataset.from_dict({"text": [_sentence(rng, words[y]) for y in labels], "label": labels})

    data = TaskData(task="classification", train=split(36), validation=split(12), test=split(12),
                    label_names=["neg", "pos", "mixed"], source="toy-3", fingerprint="toy-3")
    out = tmp_path / "run"
    train(TrainConfig(model=str(base), strategy="lora", epochs=1, batch_size=12, out=str(out)), data=data, progress=False)
    card = (out / "model" / "README.md").read_text()
    snippet = re.search(r"## Load it\s+```python\n(.*?)```", card, re.S).group(1)
    scope = {"BASE": str(base), "THIS_FOLDER": str(out / "model")}
    exec(snippet, scope)
    model = scope["model"].eval()
    ours, saved, _ = load_artifact(out)
    batch = saved(["good great film", "bad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
        assert logits.shape == (2, 3)
        assert torch.allclose(logits, ours(**batch).logits, atol=1e-5)
    # the card's other way, in one call: peft's AutoPeftModel reads the base from adapter_config.json
    one_call = re.findall(r"```python\n(.*?)```", card.split("## Load it")[1], re.S)[1]
    assert "AutoPeftModelForSequenceClassification" in one_call
    exec(one_call, scope)
    with torch.no_grad():
        assert torch.allclose(scope["model"].eval()(**batch).logits, logits, atol=1e-5)


def test_a_tokenizer_larger_than_the_models_embeddings_fails_in_one_line_before_training(toy_lm_data, tmp_path):
    """A special token added to the tokenizer after the checkpoint was saved (here an end-of-text token the decoder
    separates documents with) has no embedding row: one ModelError naming the token and the two sizes, before any
    step, instead of an index error from inside the first forward pass."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from conftest import TINY_DIMS, tiny_tokenizer
    from tunelab.errors import ModelError

    tokenizer = tiny_tokenizer()
    rows = tokenizer.vocab_size
    tokenizer.add_special_tokens({"eos_token": "<|endoftext|>"})
    folder = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=rows, num_key_value_heads=2, max_position_embeddings=128,
                                 pad_token_id=tokenizer.pad_token_id, **TINY_DIMS)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ModelError, match=rf"token '<\|endoftext\|>' \(id {rows}\), but the model's embeddings hold only {rows}"):
        train(TrainConfig(model=str(folder), strategy="lora", epochs=1, batch_size=8, out=str(tmp_path / "o")),
              data=toy_lm_data, progress=False)
    assert not (tmp_path / "o" / "model").exists()
    # a comparison checks it once, before any run, from the config and the tokenizer alone
    from tunelab.cli.main import main

    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(toy_lm_data.train["text"]) + "\n", encoding="utf-8")
    code = main(["compare", "--model", str(folder), "--data", str(text), "--strategies", "lora,full", "--epochs", "1",
                 "--no-pre-recommendation", "--no-forgetting", "--out", str(tmp_path / "c")])
    assert code == 2 and not (tmp_path / "c" / "runs").exists()
    from tunelab.models.loading import check_tokenizer_fits

    with pytest.raises(ModelError, match=r"embeddings hold only"):
        check_tokenizer_fits(str(folder), toy_lm_data)


def test_a_prompt_longer_than_the_positions_left_for_it_keeps_its_end(toy_lm_data, tmp_path, caplog):
    """GPT-2 learns 64 positions here: a 200-token prompt with 5 tokens to generate keeps its last 59 tokens and says
    so (before: an index error in generate; on a GPU a device-side assert); asking to generate the whole 64 is
    refused in one line."""
    import transformers as T

    from conftest import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    config = T.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32, n_layer=1, n_head=4,
                          bos_token_id=2, eos_token_id=3, pad_token_id=tokenizer.pad_token_id)
    T.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    train(TrainConfig(model=str(tmp_path / "gpt2"), strategy="full", epochs=1, batch_size=8, max_length=16,
                      out=str(tmp_path / "o")), data=toy_lm_data, progress=False)
    prompt = " ".join(["good film"] * 100)
    with caplog.at_level("WARNING", logger="tunelab"):
        rows = predict(tmp_path / "o", [prompt], max_new_tokens=5)
    assert len(rows) == 1 and "was cut to its last 59: the model takes 64 tokens with the 5 to generate" in caplog.text
    with pytest.raises(TunelabError, match=r"^max_new_tokens=64 leaves no room for a prompt: this model takes 64 "
                                           r"tokens in all; use at most 63"):
        predict(tmp_path / "o", ["good film"], max_new_tokens=64)


def test_prompt_tuning_on_a_decoder_classifier_reads_each_texts_last_token(tiny_llama_dir, toy_classification_data,
                                                                            tmp_path):
    """peft's prompt tuning calls the classifier with embeddings, without token ids, and transformers then reads the
    last position, padding for a text shorter than its batch's longest: a text's class depended on what it was
    batched with. The head now reads each row's last attended token, in training and in prediction alike."""
    config = TrainConfig(model=str(tiny_llama_dir), strategy="prompt-tuning", epochs=1, batch_size=8, max_length=24,
                         lr=0.05, head_lr=0.05, forgetting=False, out=str(tmp_path / "pt"))
    train(config, data=toy_classification_data, progress=False)
    short, long = "good film", "a much longer text about a film that was good and long and then some more of it"
    alone = predict(tmp_path / "pt" / "model", [short])[0]["probabilities"]
    batched = predict(tmp_path / "pt" / "model", [short, long])[0]["probabilities"]
    assert alone == pytest.approx(batched, abs=1e-5)


def _greedy(model, ids, new_tokens: int):
    """``ids`` followed by ``new_tokens`` greedy tokens, each from one forward pass of the whole sequence (no cache)."""
    with torch.no_grad():
        for _ in range(new_tokens):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], 1)
    return ids


def _tiny_gpt2(folder, positions: int):
    """A tiny random GPT-2 (an absolute position table of ``positions`` rows) with the tiny tokenizer, saved in ``folder``."""
    import transformers as T

    from conftest import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    config = T.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=positions, n_embd=32, n_layer=1, n_head=4,
                          bos_token_id=2, eos_token_id=3, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    T.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_prompt_tuned_decoder_continues_as_its_forward_passes_do(tiny_llama_dir, toy_lm_data, tmp_path):
    """peft (0.21) puts the soft prompt before the input in the model's forward; under transformers' (5) KV cache,
    generate() put it into the cache again at every step, so a Llama's continuation went wrong after a few tokens.
    predict now generates without the cache: its continuation is the greedy one of whole forward passes."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunelab.run.artifacts import continuation

    # the fixture's Llama, its weights drawn 10 times larger: at transformers' 0.02 it repeats its last token, and
    # every way of generating agrees
    base = tmp_path / "llama"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig.from_pretrained(tiny_llama_dir, initializer_range=0.2)).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(base)
    out = tmp_path / "pt"
    train(TrainConfig(model=str(base), strategy="prompt-tuning", num_virtual_tokens=8, epochs=1, batch_size=8,
                      max_length=16, forgetting=False, out=str(out)), data=toy_lm_data, progress=False)
    model, tokenizer, _ = load_artifact(out)
    for row in predict(out, ["the film was", "a very"], max_new_tokens=12):
        ids = tokenizer(row["text"], return_tensors="pt", add_special_tokens=False)["input_ids"]
        assert row["generated"] == continuation(tokenizer, _greedy(model, ids, 12)[0], ids.shape[1])


def test_a_prompt_tuned_gpt2_generates_within_its_positions(toy_lm_data, tmp_path, caplog):
    """GPT-2 learns 64 positions, 8 of them the soft prompt's: with the KV cache, each step put the soft prompt again
    into the cache, the positions rose by 9 a token, and generate ended in an IndexError past the table. And a long
    prompt was cut to the 59 positions left beside the tokens to generate, without the soft prompt's 8 (as training
    counts them): the same IndexError. Both now generate, the long prompt cut to its last 51."""
    from tunelab.run.artifacts import continuation

    out = tmp_path / "pt"
    train(TrainConfig(model=str(_tiny_gpt2(tmp_path / "gpt2", 64)), strategy="prompt-tuning", num_virtual_tokens=8,
                      epochs=1, batch_size=8, max_length=16, forgetting=False, out=str(out)), data=toy_lm_data,
          progress=False)
    model, tokenizer, _ = load_artifact(out)
    row = predict(out, "the film was", max_new_tokens=40)[0]
    ids = tokenizer(row["text"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert row["generated"] == continuation(tokenizer, _greedy(model, ids, 40)[0], ids.shape[1])
    with caplog.at_level("WARNING", logger="tunelab"):
        assert len(predict(out, " ".join(["good film"] * 100), max_new_tokens=5)) == 1
    assert ("was cut to its last 51: the model takes 56 tokens after the 8 virtual tokens of its soft prompt with the "
            "5 to generate") in caplog.text
    with pytest.raises(TunelabError, match=r"^max_new_tokens=56 leaves no room for a prompt: this model takes 56 "
                                           r"tokens in all after the 8 virtual tokens of its soft prompt; use at most 55"):
        predict(out, "good film", max_new_tokens=56)


def test_a_plain_prompt_is_tokenized_as_training_tokenizes_its_texts(tiny_llama_dir, toy_lm_data, tmp_path,
                                                                     monkeypatch):
    """Training and evaluation tokenize every text without the tokenizer's special tokens; predict added them to a
    plain prompt, so with a tokenizer that adds a BOS (Llama-2, Mistral, Gemma style) every prediction began with a
    token the adapted model never saw before a text. The prompt is now the text's tokens as a training block holds
    them."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer, GenerationMixin, PreTrainedTokenizerFast

    from conftest import tiny_tokenizer
    from tunelab.run.packing import lm_blocks

    base = tmp_path / "llama-bos"
    shutil.copytree(tiny_llama_dir, base)
    words = tiny_tokenizer().backend_tokenizer
    words.post_processor = TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 2)])  # a BOS, nothing else
    PreTrainedTokenizerFast(tokenizer_object=words, bos_token="[CLS]", eos_token="[SEP]", pad_token="[PAD]",
                            unk_token="[UNK]", model_max_length=128).save_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    text = "the film was"
    assert tokenizer(text)["input_ids"][0] == tokenizer.bos_token_id  # what predict fed the model
    train(TrainConfig(model=str(base), strategy="full", lr=1e-3, epochs=1, batch_size=8, max_length=16,
                      forgetting=False, out=str(tmp_path / "o")), data=toy_lm_data, progress=False)
    prompts, generate = [], GenerationMixin.generate
    monkeypatch.setattr(GenerationMixin, "generate",
                        lambda self, **kw: prompts.append(kw["input_ids"][0].tolist()) or generate(self, **kw))
    predict(tmp_path / "o", text, max_new_tokens=2)
    blocks, _, _, _ = lm_blocks({"text": [text]}, tokenizer, 16)
    assert prompts == [blocks[0][:-1]]  # the training block less the separator that ends the text
    # the BOS gave an empty text a token; without it there is none to continue (generate's index error before)
    with pytest.raises(TunelabError, match=r"^text 2 \(''\) has no token to continue: give each text to predict some "
                                           r"words$"):
        predict(tmp_path / "o", ["good", ""], max_new_tokens=1)


def test_a_model_trained_on_conversations_is_prompted_as_a_users_turn(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    """Trained on chat rows, the artifact says so, and predict asks each text as a user's turn (the chat template's
    generation prompt, or the plain 'user: ... / assistant:' lines the model trained on); --raw sends the text as is."""
    from transformers import AutoTokenizer

    import tunelab.data.chat as chat

    rows = [{"messages": [{"role": "user", "content": f"question {i} about films"},
                          {"role": "assistant", "content": f"answer {i} about films"}]} for i in range(40)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = TrainConfig(model=str(tiny_llama_dir), data=str(path), strategy="full", epochs=1, batch_size=8,
                         max_length=16, forgetting=False, out=str(tmp_path / "run"))
    train(config, progress=False)
    model_dir = tmp_path / "run" / "model"
    assert json.loads((model_dir / "tunelab.json").read_text())["chat"] is True
    asked, real = [], chat.generation_prompt
    monkeypatch.setattr(chat, "generation_prompt", lambda tok, text, system=None: asked.append(text) or real(tok, text, system))
    assert predict(model_dir, ["hello there"], max_new_tokens=2)[0]["chat"] is True
    assert predict(model_dir, ["hello there"], max_new_tokens=2, raw=True)[0]["chat"] is False
    assert asked == ["hello there"]  # once: not with raw
    assert real(AutoTokenizer.from_pretrained(model_dir), "hi") == "user: hi\nassistant:"  # the plain lines, saved as its template
    # a system turn, as training conversations may begin with one (--system); not for a text sent as it is
    assert real(AutoTokenizer.from_pretrained(model_dir), "hi", "be terse") == "system: be terse\nuser: hi\nassistant:"
    predict(model_dir, ["hello there"], max_new_tokens=2, system="be terse")
    with pytest.raises(TunelabError, match="^system= gives a system turn to a model trained on conversations, not with raw=True"):
        predict(model_dir, ["hello there"], max_new_tokens=2, raw=True, system="be terse")
    # the CLI prints the user's turn and the reply apart (they were glued: "hello there?To reset...")
    from tunelab.cli.main import main

    main(["-q", "predict", str(model_dir), "hello there", "--max-new-tokens", "2"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "user: hello there" and printed[1].startswith("assistant:")


def test_a_chat_model_trained_without_a_chat_template_is_saved_with_the_format_it_learnt(tiny_llama_dir, tmp_path):
    """A tokenizer without a chat template trains on the plain 'user: ... / assistant: ...' lines: the artifact's
    tokenizer has them as its chat template (plain transformers prompts it as training rendered the conversations,
    and the merged folder's too), and the model card names the format."""
    from transformers import AutoTokenizer

    from tunelab.data.chat import conversation_text, generation_prompt

    base = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert not base.chat_template
    rows = [{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": "and then"},
                          {"role": "assistant", "content": "films"}]} for i in range(40)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = TrainConfig(model=str(tiny_llama_dir), data=str(path), strategy="lora", merge=True, epochs=1,
                         batch_size=8, max_length=32, forgetting=False, out=str(tmp_path / "run"))
    record = train(config, progress=False)
    # said when it trains, not only in the model card (a run printed nothing of it)
    assert any(n.startswith("the tokenizer has no chat template: conversations are read as plain 'role: content' lines")
               for n in record["train_info"]["notes"]), record["train_info"]["notes"]
    model_dir = tmp_path / "run" / "model"
    conversation = rows[0]["messages"]
    for folder in (model_dir, model_dir / "merged"):
        saved = AutoTokenizer.from_pretrained(folder)
        assert saved.apply_chat_template(conversation, tokenize=False) == conversation_text(base, conversation)
        asked = saved.apply_chat_template(conversation[:4], tokenize=False, add_generation_prompt=True)
        assert asked == conversation_text(base, conversation[:4]) + "\nassistant:"
        user_turn = [{"role": "user", "content": "hello there"}]
        assert saved.apply_chat_template(user_turn, tokenize=False, add_generation_prompt=True) == generation_prompt(
            base, "hello there") == "user: hello there\nassistant:"
    card = (model_dir / "README.md").read_text()
    assert "`role: content` lines" in card and "apply_chat_template(messages, add_generation_prompt=True)" in card


def test_a_continuation_keeps_the_space_after_its_prompt_whatever_the_tokenizer():
    """WordPiece marks a word by its start, not by a leading space: decoding the new tokens alone glued them to the
    prompt ('To be or notcited'); the whole sequence less the prompt's decoding keeps the space."""
    from conftest import tiny_tokenizer
    from tunelab.run.artifacts import continuation

    tokenizer = tiny_tokenizer()
    prompt = tokenizer("the film was", add_special_tokens=False)["input_ids"]
    more = tokenizer("really good", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(more) == "really good"  # alone: no space
    assert continuation(tokenizer, prompt + more, len(prompt)) == " really good"


@pytest.mark.parametrize("keep", ["start", "end"])
def test_a_classifiers_saved_tokenizer_cuts_long_texts_where_training_did(tiny_bert_dir, toy_classification_data,
                                                                          tmp_path, keep):
    """The saved tokenizer kept the base's 512-token limit: plain transformers (a pipeline) read a text longer than
    --max-length whole and predicted otherwise than tunelab. It now cuts at the run's max length (and keeps the end
    for --keep end) when called with truncation=True, and the pipeline gives tunelab's probabilities."""
    from transformers import AutoTokenizer, pipeline

    from tunelab.run.encoding import encode

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=16, max_length=16, keep=keep,
                         out=str(tmp_path / "o"))
    train(config, data=toy_classification_data, progress=False)
    folder = tmp_path / "o" / MODEL_DIR
    saved = AutoTokenizer.from_pretrained(folder)
    text = " ".join(f"word{i} good film" for i in range(20))
    assert saved.model_max_length == 16
    assert saved(text, truncation=True)["input_ids"] == encode(saved, [text], None, 16, keep)["input_ids"][0]
    by_pipeline = pipeline("text-classification", model=str(folder), truncation=True, top_k=None)([text])[0]
    ours = predict(tmp_path / "o", text)[0]["probabilities"]
    assert {row["label"]: row["score"] for row in by_pipeline} == pytest.approx(ours, abs=1e-5)
    assert "truncation=True" in (folder / "README.md").read_text()


def test_a_plain_text_run_records_that_it_learnt_every_token(lm_run):
    """tunelab.json said loss_on "assistant" (the option's default) for a run on plain text, where every token is
    learnt: it says "all"."""
    info = json.loads((lm_run / MODEL_DIR / "tunelab.json").read_text())
    assert not info["chat"] and info["loss_on"] == "all"


def test_evaluating_a_language_model_on_labelled_data_says_the_labels_are_ignored(lm_run, tmp_path, caplog):
    from tunelab.run.evaluation import evaluate_artifact

    (tmp_path / "labelled.csv").write_text("text,label\n" + "".join(f"the film number {i} was good,pos\n" for i in range(12)))
    with caplog.at_level("WARNING", logger="tunelab"):
        scored = evaluate_artifact(lm_run, str(tmp_path / "labelled.csv"), split="all")
    assert scored["examples"] == 12 and "column 'label' ignored: causal-lm trains on the text alone" in caplog.text


def test_evaluate_scores_without_autograd(lm_run, tmp_path, monkeypatch):
    """A helper function placed between `@torch.inference_mode()` and `_evaluate` took the decorator: evaluate
    recorded autograd graphs for every batch (more memory, slower; torch warned of a scalar with requires_grad)."""
    import torch

    from tunelab.run import artifacts, evaluation

    seen = []
    load = artifacts.load_artifact

    def load_and_watch(*args, **kwargs):
        model, tokenizer, info = load(*args, **kwargs)
        model.register_forward_hook(lambda *_: seen.append(torch.is_grad_enabled()))
        return model, tokenizer, info

    monkeypatch.setattr(artifacts, "load_artifact", load_and_watch)
    (tmp_path / "plain.csv").write_text("text\n" + "".join(f"the film number {i} was good\n" for i in range(12)))
    evaluation.evaluate_artifact(lm_run, str(tmp_path / "plain.csv"), split="all")
    assert seen and not any(seen)


def test_evaluating_a_language_model_on_data_of_another_format_says_the_perplexities_do_not_compare(lm_run, tmp_path,
                                                                                                       caplog):
    """A causal LM trained on plain text scored chat data (or the reverse) without a word, though its perplexity is
    then over other tokens than the run's: one line says so; data of the run's format gets none."""
    import shutil

    from tunelab.run.evaluation import evaluate_artifact

    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"question {i} about films"},
                                                     {"role": "assistant", "content": f"answer {i}"}]}) + "\n"
                            for i in range(12)))
    plain = tmp_path / "plain.csv"
    plain.write_text("text\n" + "".join(f"the film number {i} was good\n" for i in range(12)))
    said = "do not compare with the run's"
    with caplog.at_level("WARNING", logger="tunelab"):
        evaluate_artifact(lm_run, str(plain), split="all")
    assert said not in caplog.text
    with caplog.at_level("WARNING", logger="tunelab"):
        evaluate_artifact(lm_run, str(chat), split="all")
    assert (f"{chat} holds conversations (chat messages), and this model trained on plain text: its loss and "
            "perplexity here do not compare with the run's") in caplog.text
    chat_run = tmp_path / "chat_run"  # the same model, recorded as trained on conversations
    shutil.copytree(lm_run, chat_run)
    info_path = chat_run / MODEL_DIR / "tunelab.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "chat": True, "loss_on": "assistant"}))
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunelab"):
        evaluate_artifact(chat_run, str(plain), split="all")
    assert f"{plain} holds plain text, and this model trained on conversations (chat messages)" in caplog.text


def test_the_model_card_states_the_epochs_a_causal_lm_trained(tiny_llama_dir, toy_lm_data, tmp_path):
    """Without --epochs a causal LM trains as many epochs as its packed blocks need for 60 steps: the card says the
    epochs the run trained (counted in blocks, as training counts them), not those its texts would have given."""
    from tunelab.config import TrainConfig
    from tunelab.run.training import train

    config = TrainConfig(model=str(tiny_llama_dir), strategy="bitfit", batch_size=4, max_length=32, forgetting=False,
                         max_eval_samples=4, out=str(tmp_path / "o"))
    record = train(config, data=toy_lm_data, progress=False)
    trained = record["train_info"]["num_epochs"]
    assert trained != config.epochs_for(len(toy_lm_data.train))  # the texts alone would say another number
    assert f"- Epochs {trained:g}," in (tmp_path / "o" / "model" / "README.md").read_text()


def test_a_soft_prompt_cards_snippet_generates_as_tunelab_predict_does(tiny_llama_dir, toy_lm_data, tmp_path):
    """A prompt-tuned causal LM's card showed only how to load it; `generate()` with the KV cache, as users call it,
    prepends the soft prompt again at every step under peft 0.21 (tunelab predict turns the cache off). The card's
    snippet, executed as written, generates without it and continues as tunelab predict does."""
    import re

    from tunelab.config import TrainConfig
    from tunelab.run.artifacts import continuation, predict
    from tunelab.run.training import train

    out = tmp_path / "o"
    train(TrainConfig(model=str(tiny_llama_dir), strategy="prompt-tuning", num_virtual_tokens=4, epochs=1, batch_size=4,
                      max_length=32, forgetting=False, max_eval_samples=4, out=str(out)), data=toy_lm_data, progress=False)
    card = (out / "model" / "README.md").read_text()
    snippet = re.search(r"## Load it\s+```python\n(.*?)```", card, re.S).group(1)
    assert "use_cache=False" in snippet
    scope = {"THIS_FOLDER": str(out / "model")}
    exec(snippet.replace("max_new_tokens=40", "max_new_tokens=5"), scope)
    tokenizer = scope["tokenizer"]
    prompt_ids = tokenizer("Once upon a time", add_special_tokens=False)["input_ids"]
    (ours,) = predict(out, ["Once upon a time"], max_new_tokens=5)
    assert continuation(tokenizer, scope["out"][0], len(prompt_ids)) == ours["generated"]


def test_a_soft_prompt_cards_snippet_asks_a_chat_model_as_tunelab_predict_does(tiny_llama_dir, tmp_path):
    """Trained on conversations, the card's snippet prompted the model with a bare "Once upon a time", where
    tunelab predict (and training) put the text in a user's turn through the chat template: executed as written, it
    now asks as predict does and continues alike."""
    import re

    from tunelab.config import TrainConfig
    from tunelab.data.chat import generation_prompt
    from tunelab.run.artifacts import continuation, predict
    from tunelab.run.training import train

    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
            for i in range(40)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "o"
    train(TrainConfig(model=str(tiny_llama_dir), data=str(path), strategy="prompt-tuning", num_virtual_tokens=4,
                      epochs=1, batch_size=4, max_length=32, forgetting=False, out=str(out)), progress=False)
    card = (out / "model" / "README.md").read_text()
    snippet = re.search(r"## Load it\s+```python\n(.*?)```", card, re.S).group(1)
    scope = {"THIS_FOLDER": str(out / "model")}
    exec(snippet.replace("max_new_tokens=40", "max_new_tokens=5"), scope)
    tokenizer, asked = scope["tokenizer"], scope["inputs"]["input_ids"][0].tolist()
    assert asked == tokenizer(generation_prompt(tokenizer, "Hello"), add_special_tokens=False)["input_ids"]
    (ours,) = predict(out, ["Hello"], max_new_tokens=5)
    assert ours["chat"] and continuation(tokenizer, scope["out"][0], len(asked)) == ours["generated"]


def test_evaluating_a_classifier_on_data_without_one_of_its_classes_says_what_its_macro_f1_averages(
        tiny_bert_dir, toy_classification_data, tmp_path, caplog):
    """tunelab evaluate of a 3-class run on its validation split, which held no 'tech', printed f1_macro 0.4000 and
    nothing else: that it averages over 2 of 3 classes was said only by compare's reasons. One line says it; data
    with every class gets none."""
    from tunelab.run.evaluation import evaluate_artifact

    config = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=16, max_length=16,
                         out=str(tmp_path / "o"))
    train(config, data=toy_classification_data, progress=False)
    (tmp_path / "neg.csv").write_text("text,label\n" + "".join(f"a dull bad film {i},neg\n" for i in range(6)))
    (tmp_path / "both.csv").write_text("text,label\n" + "".join(f"a film {i},{('neg', 'pos')[i % 2]}\n"
                                                               for i in range(6)))
    with caplog.at_level("WARNING", logger="tunelab"):
        evaluate_artifact(tmp_path / "o", str(tmp_path / "both.csv"), split="all")
    assert "averages over" not in caplog.text
    with caplog.at_level("WARNING", logger="tunelab"):
        scored = evaluate_artifact(tmp_path / "o", str(tmp_path / "neg.csv"), split="all")
    assert "f1_macro" in scored
    assert ("the data has no example of pos: nothing measures how it is recognised here, and its f1_macro averages "
            "over the 1 of 2 classes it holds") in caplog.text


def test_the_cards_one_call_load_runs_for_an_adapter_of_a_classifier_with_another_number_of_classes(
        toy_classification_data, tmp_path):
    """A LoRA adapter trained on a checkpoint that is itself a 5-class sequence classifier, for 2 classes: the card's
    one-call way (peft's AutoPeftModelForSequenceClassification) had failed in transformers' loading ("You set
    `ignore_mismatched_sizes` to `False`, thus raising an error"), the checkpoint's 5-row head not fitting the 2-class
    base it builds. It now loads and gives tunelab's logits."""
    import re

    from transformers import BertConfig, BertForSequenceClassification

    from conftest import TINY_DIMS, tiny_tokenizer
    from tunelab.run.artifacts import load_artifact

    tokenizer = tiny_tokenizer()
    five = ["very bad", "bad", "mixed", "ok", "very good"]
    torch.manual_seed(0)
    base = tmp_path / "five"
    BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=128,
                                             id2label=dict(enumerate(five)), label2id={n: i for i, n in enumerate(five)},
                                             **TINY_DIMS)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = tmp_path / "run"
    train(TrainConfig(model=str(base), strategy="lora", epochs=1, batch_size=16, out=str(out)),
          data=toy_classification_data, progress=False)
    card = (out / "model" / "README.md").read_text()
    one_call = re.findall(r"```python\n(.*?)```", card.split("## Load it")[1], re.S)[1]
    assert "AutoPeftModelForSequenceClassification" in one_call
    scope = {"THIS_FOLDER": str(out / "model")}
    exec(one_call, scope)
    ours, saved, _ = load_artifact(out)
    batch = saved(["good great film", "bad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(scope["model"].eval()(**batch).logits, ours(**batch).logits, rtol=1e-5, atol=1e-5)


def test_an_adapter_of_a_base_saved_in_bfloat16_loads_as_it_trained_in_float32(tiny_bert_dir, toy_classification_data,
                                                                              tmp_path):
    """A base whose config states bfloat16 (most checkpoints on the hub) trains and is evaluated in float32, but its
    LoRA artifact loaded the base in bfloat16 (transformers' default, the config's dtype): `tunelab predict` and the
    card's lines then classified in bfloat16. Both now load it in float32, and give the same logits."""
    import re
    import shutil

    from transformers import AutoModel

    from conftest import assert_same_logits
    from tunelab.run.artifacts import load_artifact

    base = tmp_path / "bf16"
    AutoModel.from_pretrained(tiny_bert_dir).to(torch.bfloat16).save_pretrained(base)
    for f in tiny_bert_dir.glob("*token*"):
        shutil.copy(f, base)
    assert json.loads((base / "config.json").read_text())["dtype"] == "bfloat16"
    out = tmp_path / "run"
    train(TrainConfig(model=str(base), strategy="lora", epochs=1, batch_size=16, out=str(out)),
          data=toy_classification_data, progress=False)
    ours, _, _ = load_artifact(out)
    assert {p.dtype for p in ours.parameters()} == {torch.float32}
    texts = ["good great film", "bad"]
    card = (out / "model" / "README.md").read_text()
    for snippet in re.findall(r"```python\n(.*?)```", card.split("## Load it")[1], re.S)[:2]:
        scope = {"THIS_FOLDER": str(out / "model")}
        exec(snippet, scope)
        assert {p.dtype for p in scope["model"].parameters()} == {torch.float32}
        assert_same_logits(scope["model"].eval(), ours, out / "model", texts, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["lora", "ia3"])
def test_a_merged_runs_card_counts_the_parameters_it_trained(tiny_llama_dir, toy_lm_data, tmp_path, strategy):
    """With --merge the card was written after the adapter was merged into the weights in place: it said
    "Trainable parameters: 0 of 32,224 (0.00 %)" for a LoRA causal LM (metrics.json: 12,288). It says the run's count."""
    out = tmp_path / "o"
    record = train(TrainConfig(model=str(tiny_llama_dir), strategy=strategy, merge=True, epochs=1, batch_size=4,
                               max_length=32, forgetting=False, max_eval_samples=4, out=str(out)),
                   data=toy_lm_data, progress=False)
    info = record["train_info"]
    assert (out / "model" / "merged").is_dir()
    assert info["trainable_params"] > 0
    card = (out / "model" / "README.md").read_text()
    assert (f"- Trainable parameters: {info['trainable_params']:,} of {info['total_params']:,} "
            f"({100 * info['trainable_share']:.2f} %)") in card
    # the Hub's metadata: a peft adapter names its pipeline (the Hub cannot infer it); a local base has no Hub id
    assert yaml.safe_load(card.split("---\n")[1]) == {"library_name": "peft", "pipeline_tag": "text-generation",
                                                       "tags": ["tunelab", strategy]}
    # merged/ is a plain transformers model pushed or copied on its own: it had no card; its card's snippet loads it
    merged_card = (out / "model" / "merged" / "README.md").read_text()
    assert yaml.safe_load(merged_card.split("---\n")[1])["library_name"] == "transformers"
    assert "peft" not in merged_card.split("## Load it")[1]
    assert "beside this folder" not in merged_card and "`run_config.yaml` in the run's folder" in merged_card
    scope = {"THIS_FOLDER": str(out / "model" / "merged")}
    exec(re.search(r"## Load it\s+```python\n(.*?)```", merged_card, re.S).group(1), scope)
    assert type(scope["model"]).__name__ == "LlamaForCausalLM"


@pytest.mark.parametrize(("model", "task", "base", "pipeline"), [
    ("minilm", "classification", "sentence-transformers/all-MiniLM-L6-v2", "text-classification"),
    ("smollm2", "causal-lm", "HuggingFaceTB/SmolLM2-135M-Instruct", "text-generation"),
    ("some-org/some-model", "classification", "some-org/some-model", "text-classification"),
])
def test_the_cards_metadata_names_the_base_by_its_hub_id_and_the_pipeline(model, task, base, pipeline):
    """The card's YAML had only library_name and tags: no base_model (the Hub links an adapter or fine-tune to its base
    through it) and no pipeline_tag (which the Hub cannot infer for a peft adapter). A built-in names its upstream Hub
    id, a hub id names itself; a local folder names none (the Hub refuses a path)."""
    from types import SimpleNamespace

    from tunelab.run.artifacts import card_metadata

    run = SimpleNamespace(config=SimpleNamespace(model=model), data=SimpleNamespace(task=task),
                          strategy=SimpleNamespace(artifact_format="peft", name="lora"))
    assert yaml.safe_load(card_metadata(run)) == {"base_model": base, "library_name": "peft", "pipeline_tag": pipeline,
                                                  "tags": ["tunelab", "lora"]}


def test_a_causal_lm_runs_card_and_table_show_its_validation_perplexity_as_loaded(tiny_llama_dir, toy_lm_data, tmp_path,
                                                                                   capsys):
    """A causal LM's run measures its validation perplexity before training (train_info.as_loaded_validation: 23.17
    for smollm2 as loaded, 8.30 after) but neither train's table nor the model card showed it: whether training helped
    could not be told. Both show it, marked as the model as loaded, beside the trained value."""
    from tunelab.cli.main import print_record
    from tunelab.run.training import train

    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora", batch_size=4, max_length=32, epochs=1,
                         forgetting=False, max_eval_samples=4, out=str(tmp_path / "o"))
    record = train(config, data=toy_lm_data, progress=False)
    before = record["train_info"]["as_loaded_validation"]["perplexity"]
    card = (tmp_path / "o" / "model" / "README.md").read_text().splitlines()
    at = card.index(next(line for line in card if line.startswith("| validation |")))
    assert card[at + 1] == f"| validation, as loaded (before training) | perplexity {before:.4f} |"
    assert not [line for line in card if "held in bfloat16" in line]  # a float32 base: its metrics are the folder's
    print_record(record)
    out = capsys.readouterr().out
    assert "validation perplexity as loaded (before training)" in out and f"{before:.4f}" in out
