"""Forgetting: the measures, their zero on the base model, and that more damage reads as more forgetting."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from tunelab.data.reference import reference_for
from tunelab.errors import DataError
from tunelab.run import forgetting

TEXTS = [f"the {w} of the market rose as the {v} fell sharply today" for w in ("price", "share", "value", "cost") for v in ("bank", "firm", "fund", "state")]


def test_linear_cka_is_one_for_the_same_geometry_and_lower_for_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 10))
    rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert forgetting.linear_cka(x, 2.5 * x @ rotation + 3) == pytest.approx(1.0)
    assert forgetting.linear_cka(x, rng.normal(size=(60, 10))) < 0.5
    value, low, high = forgetting.drift(x, x.copy())
    assert value == pytest.approx(0.0, abs=1e-12) and low == pytest.approx(0.0, abs=1e-9) and high == pytest.approx(0.0, abs=1e-9)


def _u_centred(gram):
    """Székely & Rizzo's (2014) U-centring of a Gram matrix: an independent route to Song et al.'s unbiased HSIC,
    which is <U(K), U(L)> / (n (n - 3))."""
    n = len(gram)
    k = gram - np.diag(np.diag(gram))
    u = k - k.sum(0, keepdims=True) / (n - 2) - k.sum(1, keepdims=True) / (n - 2) + k.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(u, 0.0)
    return u


@pytest.mark.parametrize("n", [4, 7, 32])
def test_debiased_cka_is_the_unbiased_hsic_of_song_et_al(n):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 20)), rng.normal(size=(n, 5))
    y[:, 0] += x[:, 0]  # some shared signal
    kx, ky = _u_centred(x @ x.T), _u_centred(y @ y.T)
    expected = np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky))
    assert forgetting.linear_cka(x, y) == pytest.approx(expected, rel=1e-9)
    assert forgetting.linear_cka(x, y, forgetting.DEBIASED) == forgetting.linear_cka(x, y)  # the default


@pytest.mark.parametrize("estimator", ["biased", "debiased"])
def test_linear_cka_is_one_for_the_same_geometry_up_to_rotation_and_scale(estimator):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 48))  # fewer rows than dimensions, as 32 texts of minilm's 384
    rotation, _ = np.linalg.qr(rng.normal(size=(48, 48)))
    y = rng.normal(size=(32, 48)) + x
    assert forgetting.linear_cka(x, x, estimator) == pytest.approx(1.0)
    assert forgetting.linear_cka(x, 0.01 * x @ rotation - 7, estimator) == pytest.approx(1.0)
    assert forgetting.linear_cka(x, y, estimator) == pytest.approx(forgetting.linear_cka(3 * x @ rotation, y, estimator))
    assert forgetting.linear_cka(x, y, estimator) == pytest.approx(forgetting.linear_cka(y, x, estimator))
    # never past 1 by rounding: the module doctest's x read 1 - CKA below 0 (-0.0 rounded), which train's console
    # table prints as -0.0000
    x = np.random.default_rng(0).normal(size=(50, 8))
    assert 1 - forgetting.linear_cka(x, 3 * x + 1, estimator) >= 0.0


def test_independent_representations_read_unrelated_debiased_and_alike_biased():
    """Few rows in many dimensions (32 texts, 384 dimensions, as minilm's sentence vectors of the default reference):
    the biased estimator reads independent random representations as CKA about 0.92 (drift 0.08: as if little was
    lost); the debiased one about 0 (drift about 1: unrelated), as with many rows."""
    rng = np.random.default_rng(3)
    biased, debiased = [], []
    for _ in range(10):
        x, y = rng.normal(size=(32, 384)), rng.normal(size=(32, 384))
        biased.append(forgetting.linear_cka(x, y, forgetting.BIASED))
        debiased.append(forgetting.linear_cka(x, y))
    assert min(biased) > 0.85
    assert abs(np.mean(debiased)) < 0.05 and max(abs(c) for c in debiased) < 0.2
    value, low, high = forgetting.drift(x, y)
    assert low < 1 < high <= 2 and low <= value <= high  # the interval holds "unrelated"


@pytest.mark.parametrize("estimator", [forgetting.DEBIASED, forgetting.BIASED])
def test_a_collapsed_representation_is_not_measured_not_unchanged(estimator):
    """A model collapsed to a constant output (every text the same representation) read CKA 1, so drift 0: "nothing
    forgotten". CKA is undefined without variance: the drift is not measured, with a reason (a ValueError, as the run
    records "forgetting not measured" for the other cases), float32 rounding of a constant included."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(8, 6))
    collapsed = np.tile(rng.normal(size=6), (8, 1)) * (1 + 1e-7 * rng.normal(size=(8, 1)))
    assert np.isnan(forgetting.linear_cka(base, collapsed, estimator))
    for pair, side in (((base, collapsed), "adapted"), ((collapsed, base), "as loaded")):
        with pytest.raises(ValueError, match=f"cannot be read: the model {side} gives all 8 reference texts the same"):
            forgetting.drift(*pair, estimator)
    all_but_one = collapsed.copy()
    all_but_one[0] = rng.normal(size=6)
    with pytest.raises(ValueError, match="all but one of the 8 reference texts the same"):
        forgetting.drift(base, all_but_one, estimator)


def test_the_drift_interval_holds_its_estimate():
    """Bootstrap resamples repeat rows, which biases CKA upward (drift down); the jackknife interval does not."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 16))
    y = x + rng.normal(scale=1.5, size=(32, 16))
    value, low, high = forgetting.drift(x, y)
    assert 0 < low <= value <= high < 1


def _load(path, cls):
    from transformers import AutoTokenizer

    return cls.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_drift_is_zero_for_the_base_encoder_and_grows_with_damage(tiny_bert_dir, tmp_path):
    from transformers import AutoModel, AutoModelForSequenceClassification

    model, tok = _load(tiny_bert_dir, AutoModelForSequenceClassification)
    base = AutoModel.from_pretrained(tiny_bert_dir)
    same = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(tiny_bert_dir), base_body=base, cache=tmp_path)
    assert same.measure == forgetting.DRIFT and same.value == pytest.approx(0.0, abs=1e-6) and not same.base_cached
    # the record names its estimator; one written before it did reads as biased
    assert (same.estimator, same.unit) == ("debiased", "1 - debiased linear CKA")
    assert forgetting.unit_of(same.to_dict()) == "1 - debiased linear CKA"
    assert forgetting.unit_of({"measure": forgetting.DRIFT, "unit": "1 - linear CKA"}) == "1 - biased linear CKA"
    assert forgetting.unit_of({"unit": "1 - linear CKA", "value": 0.1}) == "1 - biased linear CKA"
    assert forgetting.unit_of({"measure": forgetting.LM_LOSS, "unit": "nats/token"}) == "nats/token"
    with torch.no_grad():
        for p in model.bert.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    hurt = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(tiny_bert_dir), cache=tmp_path)
    assert hurt.base_cached  # the base side came from the cache: no base model needed
    assert hurt.low > same.high


def _pretrained_tiny_llama(tiny_llama_dir, folder):
    """The random tiny Llama, trained for a few steps on TEXTS so that it has something to forget."""
    from transformers import AutoModelForCausalLM

    model, tok = _load(tiny_llama_dir, AutoModelForCausalLM)
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(40):
        loss = model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_lm_loss_change_is_zero_for_the_base_decoder_and_positive_when_the_body_is_damaged(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base_dir = _pretrained_tiny_llama(tiny_llama_dir, tmp_path / "base")
    model, tok = _load(base_dir, AutoModelForCausalLM)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    head = base.get_output_embeddings()
    same = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(base_dir), base_body=base.model, base_lm_head=head, cache=tmp_path)
    assert same.measure == forgetting.LM_LOSS and same.unit == "nats/token"
    assert same.value == pytest.approx(0.0, abs=1e-6) and same.base == pytest.approx(same.adapted)
    with torch.no_grad():
        for p in model.model.layers.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    hurt = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(base_dir), base_lm_head=head, cache=tmp_path)
    assert hurt.base_cached and hurt.value > 0 and hurt.low > same.high


def test_a_peft_adapter_is_measured_against_itself_switched_off(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model, tok = _load(tiny_llama_dir, AutoModelForCausalLM)
    head = model.get_output_embeddings()
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    result = forgetting.measure(peft_model, tok, TEXTS, reference="t", base_path=str(tiny_llama_dir), base_lm_head=head, adapter_off=peft_model.disable_adapter)
    assert result.value != 0.0  # random (non-zero) LoRA weights change the model
    untouched = get_peft_model(_load(tiny_llama_dir, AutoModelForCausalLM)[0], LoraConfig(r=4, target_modules=["q_proj"]))
    zero = forgetting.measure(untouched, tok, TEXTS, reference="t", base_path=str(tiny_llama_dir), base_lm_head=head, adapter_off=untouched.disable_adapter)
    assert zero.value == pytest.approx(0.0, abs=1e-6)  # LoRA's B starts at zero: nothing changed yet


def _prompt_tuned(model, task_type: str):
    """``model`` with a random soft prompt of 4 virtual tokens (peft prompt tuning)."""
    from peft import PromptTuningConfig, get_peft_model

    torch.manual_seed(0)
    return get_peft_model(model, PromptTuningConfig(task_type=task_type, num_virtual_tokens=4)).eval()


def test_a_soft_prompt_is_measured_as_the_adapted_model_predicts_with_it(tiny_llama_dir, tiny_bert_dir):
    """Prompt tuning leaves the body as it is and puts its soft prompt before the text in the peft model's own
    forward: measured on the body alone, its forgetting was exactly 0 (the base against itself). Now the adapted side
    is the whole prompt-tuned model's next-token loss on the text's tokens, what a direct loop gives; the base side is
    the same model with the adapter off. An encoder's drift reads the soft prompt too."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    model, tok = _load(tiny_llama_dir, AutoModelForCausalLM)
    head = model.get_output_embeddings()
    tuned = _prompt_tuned(model, "CAUSAL_LM")
    result = forgetting.measure(tuned, tok, TEXTS, reference="t", base_path=str(tiny_llama_dir), base_lm_head=head,
                                adapter_off=tuned.disable_adapter)

    def direct(off: bool) -> float:  # the texts packed as a causal-LM run packs them (a soft prompt: across texts)
        from tunelab.run.packing import lm_blocks

        blocks = lm_blocks({"text": TEXTS}, tok, forgetting.DEFAULT_MAX_LENGTH, keep_tail=True)[0]
        total = count = 0.0
        with torch.no_grad(), tuned.disable_adapter() if off else contextlib.nullcontext():
            for block in blocks:
                ids = torch.tensor([block])
                logits = tuned(input_ids=ids).logits[0, -ids.shape[1] :]  # the soft prompt's positions left out
                total += torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="sum").item()
                count += ids.shape[1] - 1
        return total / count

    assert result.base == pytest.approx(direct(off=True), rel=1e-5)
    assert result.adapted == pytest.approx(direct(off=False), rel=1e-5)
    assert result.value == pytest.approx(result.adapted - result.base, abs=1e-6) and abs(result.value) > 1e-3
    # a run trained in mixed precision keeps accelerate's autocast wrapper on the model's forward: still float32
    tuned.forward = torch.autocast("cpu", dtype=torch.bfloat16)(tuned.forward)
    wrapped = forgetting.measure(tuned, tok, TEXTS, reference="t", base_path=str(tiny_llama_dir), base_lm_head=head,
                                 adapter_off=tuned.disable_adapter)
    assert wrapped.adapted == pytest.approx(result.adapted, abs=1e-6)

    classifier, tok = _load(tiny_bert_dir, AutoModelForSequenceClassification)
    tuned = _prompt_tuned(classifier, "SEQ_CLS")
    drift = forgetting.measure(tuned, tok, TEXTS, reference="t", base_path=str(tiny_bert_dir),
                               base_body=AutoModel.from_pretrained(tiny_bert_dir), adapter_off=tuned.disable_adapter)
    assert drift.measure == forgetting.DRIFT and drift.value > 1e-3


def test_the_measure_does_not_depend_on_the_tokenizers_padding_side(tmp_path):
    """A decoder with absolute positions (GPT-2) padded on the left read its texts at shifted positions, and each
    row's first token was predicted from a pad: the forgetting of one model differed with the tokenizer's padding
    side. Padded on the right, as evaluation pads, it is one number."""
    import copy

    from transformers import GPT2Config, GPT2LMHeadModel

    from conftest import tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4)).eval()
    adapted = copy.deepcopy(base)
    with torch.no_grad():
        for p in adapted.transformer.h.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    texts = ["the film was good", "a very long and quite boring story about the plot of the film", "bad",
             "the acting was really wonderful and the movie was funny"]
    results = {}
    for side in ("right", "left"):
        tok.padding_side = side
        results[side] = forgetting.measure(adapted, tok, texts, reference="t", base_path="gpt2", base_body=base.transformer,
                                           base_lm_head=base.lm_head)
    right, left = results["right"], results["left"]
    assert abs(right.value) > 1e-3
    assert (left.value, left.base, left.adapted) == pytest.approx((right.value, right.base, right.adapted), abs=1e-6)


def test_the_reference_is_never_the_training_data(tmp_path):
    name, texts = reference_for("rotten-tomatoes", n=8)
    assert name == "bbc-text" and len(texts) == 8
    assert reference_for("bbc-news", n=4)[0] == "hamlet"
    own = tmp_path / "ref.txt"
    own.write_text("first paragraph of text.\n\nsecond paragraph.\n\nthird one.\n\nand a fourth.\n\na fifth.\n")
    assert reference_for("bbc-news", str(own), n=2)[0] == str(own)
    with pytest.raises(DataError, match="not found"):
        reference_for("x", str(tmp_path / "missing.txt"))
    # a reference that cannot serve is refused with the options, before training (the measurement comes after it)
    from tunelab import TrainConfig

    lines = tmp_path / "lines.txt"
    lines.write_text("one line\nanother line\n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xe9t\xe9\n\nsecond\n")
    assert TrainConfig(reference_text=str(own)).problems() == []
    assert any("holds 1 paragraph(s); give at least 5" in p for p in TrainConfig(reference_text=str(lines)).problems())
    assert any(p.startswith("reference_text=") and "is not valid UTF-8" in p
               for p in TrainConfig(reference_text=str(binary)).problems())


def test_a_reference_file_is_read_as_data_files_are(tmp_path):
    """A user's reference in the format of their data (a CSV or JSON lines file of texts) gives its text column, as
    predict --file reads one; it was read as plain text, one paragraph, and refused ('holds 1 paragraph(s)'); plain
    text is read as --data reads it: a BOM, UTF-16 and blank lines holding spaces are no part of the texts."""
    import json

    from tunelab.data.reference import reference_file_paragraphs

    texts = ["the first text", "a second, with a comma", "and a third", "a fourth", "the fifth"]
    table = tmp_path / "ref.csv"
    table.write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts)))
    assert reference_file_paragraphs(table) == texts
    lines = tmp_path / "ref.jsonl"
    lines.write_text("".join(json.dumps({"text": t, "label": "x"}) + "\n" for t in texts))
    assert reference_file_paragraphs(lines) == texts
    for name, encoding, blank in (("bom.txt", "utf-8-sig", "\n\n"), ("utf16.txt", "utf-16", "\n\n"),
                                  ("spaces.txt", "utf-8", "\n  \n"), ("crlf.txt", "utf-8", "\r\n\r\n")):
        (tmp_path / name).write_bytes(blank.join(texts).encode(encoding))
        assert reference_file_paragraphs(tmp_path / name) == texts, name
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"text": "only one"}) + "\n")
    drift_needs = forgetting.MIN_TEXTS[forgetting.DRIFT]
    with pytest.raises(DataError, match="holds 1 non-empty text.* in its column text; give at least 5"):
        reference_file_paragraphs(one, drift_needs)
    # an encoder's drift needs 5: debiased CKA needs 4 texts (Song et al.'s HSIC divides by n - 3), its jackknife
    # interval leaves one out; with the biased estimator 2 texts read 0 whatever the model did
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 16))
    assert forgetting.drift(base, rng.normal(size=(2, 16)), forgetting.BIASED) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
    with pytest.raises(ValueError, match="needs at least 5 reference texts, got 4"):
        forgetting.drift(rng.normal(size=(4, 16)), rng.normal(size=(4, 16)))
    (tmp_path / "four.txt").write_text("one.\n\ntwo.\n\nthree.\n\nfour.\n")
    with pytest.raises(DataError, match="holds 4 paragraph.*give at least 5"):
        reference_file_paragraphs(tmp_path / "four.txt", drift_needs)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="^reference_text=.*empty.txt: the file is empty"):
        reference_file_paragraphs(tmp_path / "empty.txt")


def test_a_short_reference_is_refused_by_the_measure_the_model_gets(tiny_bert_dir, tiny_llama_dir, tmp_path):
    """The fewest reference texts (5, for the debiased CKA's jackknife) applied to decoders too, whose forgetting is the
    LM-loss change, and the refusal spoke of an encoder's CKA. The minimum and its reason are the measure's: an encoder
    needs 5 for its drift; a decoder 2, for its loss change's interval, and its refusal says so."""
    from tunelab import TrainConfig

    def problems(model, texts: int) -> list[str]:
        path = tmp_path / f"{texts}.txt"
        path.write_text("\n\n".join(f"text number {i}." for i in range(texts)))
        return [p for p in TrainConfig(model=str(model), reference_text=str(path)).problems() if "reference_text" in p]

    assert forgetting.measure_for(str(tiny_llama_dir)) == forgetting.LM_LOSS
    assert forgetting.measure_for(str(tiny_bert_dir)) == forgetting.DRIFT
    assert problems(tiny_llama_dir, 3) == [] and problems(tiny_bert_dir, 5) == []
    [encoder] = problems(tiny_bert_dir, 4)
    assert "holds 4 paragraph(s); give at least 5" in encoder and "encoder's representation drift (debiased CKA" in encoder
    [decoder] = problems(tiny_llama_dir, 1)
    assert "holds 1 paragraph(s); give at least 2" in decoder and "a decoder's language-model loss change" in decoder
    assert "CKA" not in decoder and "encoder" not in decoder.replace("decoder", "")


def _train(tiny_bert_dir, data, tmp_path, name, **kw):
    from tunelab import TrainConfig, train

    kw = {"epochs": 1, **kw}
    config = TrainConfig(model=str(tiny_bert_dir), out=str(tmp_path / name), batch_size=8, **kw)
    return train(config, data=data, progress=False)


def test_every_run_records_its_forgetting_and_hard_training_forgets_more_than_a_head(
    tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    head = _train(tiny_bert_dir, toy_classification_data, tmp_path, "head", strategy="head")["train_info"]["forgetting"]
    assert head["measure"] == forgetting.DRIFT and head["reference"] == "bbc-text"
    assert head["value"] == pytest.approx(0.0, abs=1e-6)  # the body is frozen: nothing to forget
    hard = _train(tiny_bert_dir, toy_classification_data, tmp_path, "full", strategy="full", lr=5e-2, epochs=3)
    lost = hard["train_info"]["forgetting"]
    assert lost["base_cached"] and lost["low"] > head["high"]
    off = _train(tiny_bert_dir, toy_classification_data, tmp_path, "off", strategy="head", forgetting=False)
    assert off["train_info"].get("forgetting") is None


def test_a_prompt_tuning_run_records_what_its_soft_prompt_changes(tiny_bert_dir, toy_classification_data, tmp_path,
                                                                  monkeypatch):
    """A prompt-tuned classifier's run: peft cannot switch a classifier's soft prompt off (it swaps a generation
    method that classifiers lack), so the measure failed with a note, or read the cached base against itself as 0.
    The body alone is the base, and the adapted side reads the soft prompt."""
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    run = _train(tiny_bert_dir, toy_classification_data, tmp_path, "pt", strategy="prompt-tuning", num_virtual_tokens=4)
    measured = run["train_info"]["forgetting"]
    assert "error" not in measured and measured["measure"] == forgetting.DRIFT and measured["value"] > 1e-3


def test_an_encoder_with_a_pretrained_mlm_head_also_reports_the_masked_lm_loss_change(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForMaskedLM

    config = BertConfig.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    folder = tmp_path / "mlm-bert"
    BertForMaskedLM(config).save_pretrained(folder)  # a checkpoint that holds its masked-LM head
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
    from tunelab.models import load_pretrained_mlm

    tok = AutoTokenizer.from_pretrained(folder)
    mlm = load_pretrained_mlm(str(folder), tok)
    assert mlm is not None and load_pretrained_mlm(str(tiny_bert_dir), tok) is None  # a bare body has none
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    same = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(folder), base_body=mlm.base_model,
                              mlm=mlm, cache=tmp_path / "c")
    assert same.mlm_loss_change == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for p in model.bert.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    hurt = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(folder), mlm=mlm, cache=tmp_path / "c")
    assert hurt.mlm_loss_change != pytest.approx(0.0, abs=1e-3) and hurt.value > same.value


def test_the_lm_loss_reads_the_reference_with_the_attention_the_run_trained_with(tiny_llama_dir, tmp_path):
    """A causal-LM run that kept its packed texts apart (--document-mask) had its forgetting scored on each reference
    text read alone from position 0, without the end-of-text token that opens a text in the run's blocks: an attention
    the model never trained with, on either side. The reference is now packed as the run packs its data, and with
    the run's document_mask each text attends only to itself (``<EOS> text``) on the base side and the adapted side
    alike; without it, to the texts before it. The base side is cached per reading."""
    from transformers import AutoModelForCausalLM

    from tunelab.run.packing import lm_blocks

    model, tok = _load(tiny_llama_dir, AutoModelForCausalLM)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    head = base.get_output_embeddings()
    with torch.no_grad():
        for p in model.model.layers.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    length = 48
    blocks, _, _, positions = lm_blocks({"text": TEXTS}, tok, length, keep_tail=True)  # every text read
    assert len(blocks) > 1

    def expected(net, per_text: bool) -> float:
        total = count = 0.0
        with torch.no_grad():
            for block, pos in zip(blocks, positions):
                starts = [i for i, p in enumerate(pos) if p == 0] + [len(block)] if per_text else [0, len(block)]
                logits = torch.cat([net(input_ids=torch.tensor([block[a:b]])).logits[0]  # each text run alone
                                    for a, b in zip(starts, starts[1:])])
                ids = torch.tensor(block)
                total += torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="sum").item()
                count += len(block) - 1
        return total / count

    results = {}
    for per_text in (False, True):
        results[per_text] = forgetting.measure(model, tok, TEXTS, reference="t", base_path=str(tiny_llama_dir),
                                               base_body=base.model, base_lm_head=head, cache=tmp_path,
                                               max_length=length, document_mask=per_text)
        assert not results[per_text].base_cached  # the other reading's base side is no answer for this one
        assert results[per_text].base == pytest.approx(expected(base, per_text), rel=1e-5)
        assert results[per_text].adapted == pytest.approx(expected(model, per_text), rel=1e-5)
    assert results[True].base != pytest.approx(results[False].base, rel=1e-4)


def test_a_run_measures_its_forgetting_with_the_attention_it_trained_with(tiny_llama_dir, monkeypatch):
    """The run's effective per-text attention (a soft prompt falls back to reading across texts), not the flag asked."""
    from types import SimpleNamespace

    from tunelab import TrainConfig
    from tunelab.run import training

    seen = {}

    def measure_run(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(forgetting, "measure_run", measure_run)
    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora")
    for effective in (False, True):
        run = SimpleNamespace(config=config, model=None, tokenizer=None, document_mask=effective)
        assert training._forgetting(run, 1.0) == {"error": "stop here"}
        assert seen["document_mask"] is effective
