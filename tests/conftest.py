"""Shared fixtures: tiny models and toy data that make a full tunelab run take about a second.

Every fixture here is session-scoped and read-only: copy a folder before changing it.

``tiny_bert_dir``
    Folder of a randomly initialised 3-block BERT encoder (hidden 32) with a ~150-piece WordPiece
    tokenizer (:func:`tiny_tokenizer`), written by ``save_pretrained``. Pass it as ``TrainConfig(model=str(tiny_bert_dir))``: it loads
    through tunelab's normal ``from_pretrained`` path (``model_layout`` family ``"bert"``).
``tiny_llama_dir``
    The same for a 3-block Llama decoder (hidden 32, 4 heads / 2 KV heads, tied embeddings as in
    SmolLM2), with the same tokenizer given ``[SEP]`` as its end-of-sequence token.
``toy_classification_data``
    :class:`~tunelab.data.TaskData` with labels ``neg``/``pos`` (48 train / 16 validation / 16 test),
    learnable from sentiment words. Shared: use ``train(config, data=...)``; do not mutate it.
``toy_lm_data``
    Causal-LM :class:`~tunelab.data.TaskData` of short repetitive sentences.

>>> def test_head(tiny_bert_dir, toy_classification_data, tmp_path):
...     cfg = TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=8, out=str(tmp_path))
...     train(cfg, data=toy_classification_data, progress=False)
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_DIMS = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64}

_POSITIVE = ["good", "great", "excellent", "wonderful", "brilliant", "moving", "funny", "beautiful"]
_NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "weak", "ugly", "painful"]
_FILLER = ["the", "film", "movie", "story", "was", "really", "quite", "and", "acting", "plot", "a", "very"]


def tiny_tokenizer():
    """A lower-casing WordPiece (BERT) tokenizer of ~150 pieces: the toy words whole, any other word
    spelled in ``##`` letter pieces, so every text tokenizes without [UNK] and stays cheap to hash."""
    import string

    from transformers import BertTokenizerFast

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits, *string.punctuation]
    pieces += ["##" + c for c in string.ascii_lowercase + string.digits]
    pieces += sorted(set(_POSITIVE + _NEGATIVE + _FILLER) - set(pieces))
    return BertTokenizerFast(vocab={p: i for i, p in enumerate(pieces)}, model_max_length=128)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT encoder + the tiny tokenizer, saved as a transformers folder."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = tiny_tokenizer()
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, **TINY_DIMS)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama decoder (tied embeddings) + the tiny tokenizer with an EOS token, saved as a transformers folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        **TINY_DIMS,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def logits_of(model, model_dir: Path, texts: list[str]):
    """``model``'s logits on ``texts``, tokenized by ``model_dir``'s tokenizer (right-padded), on the CPU: a
    trained model stays on the device it trained on (the GPU, where there is one), so the inputs go there. A model
    that trained in mixed precision keeps accelerate's autocast wrapper on its ``forward``; it is taken off, so the
    logits are the float32 ones its saved weights give."""
    import torch
    from accelerate.utils import extract_model_from_parallel
    from transformers import AutoTokenizer

    model = extract_model_from_parallel(model, keep_fp32_wrapper=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).logits.cpu()


def assert_same_logits(loaded, trained, model_dir: Path, texts: list[str], **tolerance) -> None:
    """The model ``loaded`` from an artifact computes what the ``trained`` one does, on the trained one's device
    (a CPU and a GPU differ in the last digits)."""
    import torch

    loaded = loaded.to(next(trained.parameters()).device)
    torch.testing.assert_close(logits_of(loaded, model_dir, texts), logits_of(trained, model_dir, texts), **tolerance)


def assert_same_plain_logits(loaded, trained, model_dir: Path, texts: list[str], **tolerance) -> None:
    """:func:`assert_same_logits` for a model loaded plainly (transformers, peft) from an artifact: in a padded batch,
    unless its model card says to classify one text at a time (a soft prompt reaches a decoder classifier as
    embeddings, and plain transformers then reads each row's last position, padding in a padded batch): then text by
    text."""
    if "classify one text at a time" in (model_dir / "README.md").read_text():
        for text in texts:
            assert_same_logits(loaded, trained, model_dir, [text], **tolerance)
    else:
        assert_same_logits(loaded, trained, model_dir, texts, **tolerance)


def _sentence(rng: random.Random, words: list[str]) -> str:
    body = rng.sample(_FILLER, 4) + rng.sample(words, 2)
    rng.shuffle(body)
    return " ".join(body)


@pytest.fixture(scope="session")
def toy_classification_data():
    """Two-class TaskData (``neg``, ``pos``): 48 / 16 / 16 balanced rows, label given by sentiment words."""
    from datasets import Dataset

    from tunelab.data import TaskData

    rng = random.Random(0)

    def split(n: int) -> Dataset:
        labels = [i % 2 for i in range(n)]
        texts = [_sentence(rng, _POSITIVE if y else _NEGATIVE) for y in labels]
        return Dataset.from_dict({"text": texts, "label": labels})

    return TaskData(
        task="classification",
        train=split(48),
        validation=split(16),
        test=split(16),
        label_names=["neg", "pos"],
        source="toy-sentiment",
        fingerprint="toy-sentiment-v1",
    )


@pytest.fixture(scope="session")
def toy_lm_data():
    """Causal-LM TaskData: plain ``text`` rows of short sentences (40 / 12 / 12)."""
    from datasets import Dataset

    from tunelab.data import TaskData

    rng = random.Random(1)

    def split(n: int) -> Dataset:
        return Dataset.from_dict({"text": [_sentence(rng, _POSITIVE + _NEGATIVE) + " ." for _ in range(n)]})

    return TaskData(task="causal-lm", train=split(40), validation=split(12), test=split(12), source="toy-text", fingerprint="toy-text-v1")


@pytest.fixture
def runs_in_process(monkeypatch):
    """``tunelab compare`` through ``main`` with its runs trained in this process (``LocalExecutor(isolate=False)``, the
    same ``run_spec`` code path) instead of a fresh worker process each: for the tests of what the command line decides
    (refusals, resume, messages, exit codes), where each worker's import of torch and transformers cost several
    seconds and checked nothing. The tests about the workers themselves (test_compare's
    ``test_cli_compare_records_failure_writes_report_and_resumes``, the isolation and Ray tests) keep them."""
    from tunelab.compare import executors

    make = executors.make_executor
    monkeypatch.setattr(executors, "make_executor", lambda name, **kw: make(name, **{**kw, "isolate": False}))


@pytest.fixture(autouse=True)
def _one_torch_thread_for_tiny_models(request):
    """Tiny models run fastest on one thread (and do not fight other processes for cores);
    integration tests on the real models keep torch's default."""
    import torch

    if request.node.get_closest_marker("integration"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
