"""The frozen-prefix cache: same logits as the uncached model, same training, a key that tracks its
inputs, a memory-mapped path, reuse across runs and sharing from a lower split (tiny models, no dropout)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunelab.config import TrainConfig
from tunelab.run import cache as frozen_cache
from tunelab.run.training import build_shared_cache, prepare, train

DIMS = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64}


def _tokenizer():
    from transformers import AutoTokenizer

    from tunelab.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("minilm"))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel

    tok = _tokenizer()
    config = BertConfig(
        vocab_size=tok.vocab_size,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0,
        **DIMS,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cache-bert")
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    tok.eos_token = "[SEP]"
    config = LlamaConfig(
        vocab_size=tok.vocab_size,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        attention_dropout=0.0,
        **DIMS,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cache-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _config(model_dir, tmp_path, **kw) -> TrainConfig:
    values = dict(
        model=str(model_dir),
        strategy="head",
        epochs=1,
        batch_size=8,
        seed=0,
        out=str(tmp_path / "out"),
        overwrite=True,
        cache_dir=str(tmp_path / "features"),
        cache_precision="fp32",  # exact comparisons; bf16 has its own test
    )
    values.update(kw)
    return TrainConfig(**values)


def _eval_batch(run, split="validation", n=8):
    from transformers import DataCollatorWithPadding

    ds = run.tokenized[split]
    rows = [{k: ds[i][k] for k in ("input_ids", "attention_mask", "labels")} for i in range(n)]
    return DataCollatorWithPadding(run.tokenizer)(rows)


@pytest.mark.parametrize("family", ["bert", "llama"])
@pytest.mark.parametrize(
    ("strategy", "extra"), [("head", {}), ("last-n", {"layers": 1}), ("lora", {"lora_layers": 1})]
)
def test_cached_forward_gives_the_uncached_logits(
    family, strategy, extra, bert_dir, llama_dir, tmp_path, toy_classification_data, monkeypatch
):
    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "float32")
    model_dir = bert_dir if family == "bert" else llama_dir
    run = prepare(_config(model_dir, tmp_path, strategy=strategy, **extra), toy_classification_data)
    run.model.eval()
    batch = _eval_batch(run)
    with torch.no_grad():
        expected = run.model(**batch).logits
    plan = frozen_cache.plan(run)
    assert plan is not None and plan.dtype == "float32"
    assert plan.split == run.layout.num_blocks - (0 if strategy == "head" else 1)
    assert plan.positions == ("all" if strategy != "head" else ("first" if family == "bert" else "last"))
    sets = tuple(run.tokenized[s] for s in ("train", "validation", "test"))
    _, val, _, collator, info = frozen_cache.apply(plan, run, sets)
    assert info["used"] and info["split"] == plan.split and info["where"] == "memory"
    cached_batch = collator([val[i] for i in range(8)])
    with torch.no_grad():
        got = run.model(**cached_batch).logits
    frozen_cache.restore(plan, run)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # restored: the whole model runs again, same logits
        torch.testing.assert_close(run.model(**batch).logits, expected)


def test_cached_forward_gives_the_uncached_logits_on_text_pairs(bert_dir, tmp_path, monkeypatch):
    """Text pairs carry token types (BERT's second segment): the cache's frozen pass takes them as the model does."""
    import random

    from datasets import Dataset

    from tunelab.data import TaskData

    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "float32")
    rng = random.Random(0)
    words = "good bad film story long short".split()

    def split(n):
        return Dataset.from_dict({"text": [" ".join(rng.choices(words, k=5)) for _ in range(n)],
                                  "text_pair": [" ".join(rng.choices(words, k=3)) for _ in range(n)], "label": [i % 2 for i in range(n)]})

    data = TaskData(task="classification", train=split(24), validation=split(8), test=split(8), label_names=["no", "yes"],
                    source="toy-pairs", fingerprint="toy-pairs-cache")
    run = prepare(_config(bert_dir, tmp_path, strategy="last-n", layers=1), data)
    run.model.eval()
    from transformers import DataCollatorWithPadding

    ds = run.tokenized["validation"]
    batch = DataCollatorWithPadding(run.tokenizer)(
        [{k: ds[i][k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")} for i in range(8)])
    assert int(batch["token_type_ids"].sum()) > 0
    with torch.no_grad():
        expected = run.model(**batch).logits
        plan = frozen_cache.plan(run)
        _, val, _, collator, info = frozen_cache.apply(plan, run, tuple(run.tokenized[s] for s in ("train", "validation", "test")))
        assert info["used"]
        got = run.model(**collator([val[i] for i in range(8)])).logits
    frozen_cache.restore(plan, run)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_float16_cache_is_close(bert_dir, tmp_path, toy_classification_data):
    run = prepare(_config(bert_dir, tmp_path, strategy="last-n", layers=1), toy_classification_data)
    run.model.eval()
    batch = _eval_batch(run)
    with torch.no_grad():
        expected = run.model(**batch).logits
    plan = frozen_cache.plan(run)
    assert plan.dtype == "float16"
    _, val, _, collator, _ = frozen_cache.apply(
        plan, run, tuple(run.tokenized[s] for s in ("train", "validation", "test"))
    )
    with torch.no_grad():
        got = run.model(**collator([val[i] for i in range(8)])).logits
    frozen_cache.restore(plan, run)
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-2)


@pytest.mark.parametrize(("strategy", "extra"), [("head", {}), ("last-n", {"layers": 1})])
def test_training_with_and_without_the_cache_agrees(
    strategy, extra, bert_dir, tmp_path, toy_classification_data, monkeypatch
):
    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "float32")
    records = {}
    for cache in (True, False):
        cfg = _config(bert_dir, tmp_path / str(cache), strategy=strategy, cache=cache, epochs=2, precision="fp32", **extra)
        records[cache] = train(cfg, data=toy_classification_data, progress=False)
    with_cache, without = records[True], records[False]
    assert with_cache["train_info"]["cache"]["used"] and not without["train_info"]["cache"]["used"]
    assert with_cache["metrics"]["test"]["loss"] == pytest.approx(
        without["metrics"]["test"]["loss"], abs=1e-3
    )
    from safetensors.torch import load_file

    wa = load_file(Path(with_cache["artifact"]["path"]) / "model.safetensors")
    wb = load_file(Path(without["artifact"]["path"]) / "model.safetensors")
    assert wa.keys() == wb.keys()  # the saved model is the whole model, names unchanged
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-4, rtol=1e-3, msg=name)


def test_last_n_from_the_cache_trains_batches_cut_by_length_to_the_same_weights(bert_dir, tmp_path, monkeypatch):
    """A small run's random batches of mixed lengths are cut into micro-batches (tunelab.run.padding) on the cached path
    too: the cached hidden states are cut with the tokens' rows and positions, and the run ends with the weights of the
    same run trained on whole batches (no dropout in the tiny model: equal up to float rounding)."""
    import random

    from datasets import Dataset

    from tunelab.data import TaskData
    from tunelab.run import padding

    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "float32")
    rng = random.Random(0)
    words = "good bad film story long short".split()

    def split(n):  # mostly short texts, a few long ones: the batches are worth cutting
        lengths = [rng.choice([3, 4, 5, 6, 30]) for _ in range(n)]
        return Dataset.from_dict({"text": [" ".join(rng.choices(words, k=k)) for k in lengths], "label": [i % 2 for i in range(n)]})

    data = TaskData(task="classification", train=split(64), validation=split(16), test=split(16), label_names=["no", "yes"],
                    source="toy-lengths", fingerprint="toy-lengths-cache")
    real = padding.split_by_padding
    cut: list[int] = []

    def counting(inputs, **kwargs):
        parts = real(inputs, **kwargs)
        if parts is not None and "cached_hidden" in inputs:
            cut.append(len(parts))
            assert all(part["cached_hidden"].shape[:2] == part["attention_mask"].shape for part, _ in parts)
        return parts

    records = {}
    for mode in ("cut", "whole"):
        monkeypatch.setattr(padding, "split_by_padding", counting if mode == "cut" else lambda inputs, **kwargs: None)
        cfg = _config(bert_dir, tmp_path / mode, strategy="last-n", layers=1, epochs=2, batch_size=16, precision="fp32",
                      lr=1e-3)
        records[mode] = train(cfg, data=data, progress=False)
    assert records["cut"]["train_info"]["cache"]["used"] and cut and min(cut) >= 2
    assert records["cut"]["metrics"]["test"]["loss"] == pytest.approx(records["whole"]["metrics"]["test"]["loss"], abs=1e-4)
    from safetensors.torch import load_file

    wa = load_file(Path(records["cut"]["artifact"]["path"]) / "model.safetensors")
    wb = load_file(Path(records["whole"]["artifact"]["path"]) / "model.safetensors")
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-5, rtol=1e-4, msg=name)


def test_a_screening_run_caches_no_test_split(bert_dir, tmp_path, toy_classification_data):
    """A planned comparison's screening runs are validated only: their frozen-layer cache leaves the test split out
    (it is never evaluated), and the run still trains from the cache."""
    import json

    record = train(_config(bert_dir, tmp_path, strategy="last-n", layers=1, screening=True, forgetting=False),
                   data=toy_classification_data, progress=False)
    assert record["train_info"]["cache"]["used"] and record["metrics"]["validation"] and not record["metrics"].get("test")
    stores = sorted((json.loads(p.read_text())["first_built_for"], json.loads(p.read_text())["rows"])
                    for p in (tmp_path / "features").rglob("meta.json"))
    assert stores == [("train", 48), ("validation", 16)]


def test_runs_on_other_training_rows_reuse_the_evaluation_splits_features(bert_dir, tmp_path, toy_classification_data):
    """Each data split's features are stored by its own tokens: a run on a fraction of the training data (a learning
    curve's point, a planned comparison's round) computes its training rows only and reads the validation and test
    features another run stored."""
    import json

    from tunelab.data import TaskData

    full = toy_classification_data
    half = TaskData(task=full.task, train=full.train.select(range(24)), validation=full.validation, test=full.test,
                    label_names=full.label_names, source=full.source, fingerprint="toy-half")
    shared = str(tmp_path / "features")
    first = train(_config(bert_dir, tmp_path / "a", strategy="last-n", layers=1, cache_dir=shared), data=full, progress=False)
    second = train(_config(bert_dir, tmp_path / "b", strategy="last-n", layers=1, cache_dir=shared), data=half, progress=False)
    a, b = first["train_info"]["cache"], second["train_info"]["cache"]
    assert a["used"] and b["used"] and not a["reused"] and not b["reused"] and a["key"] != b["key"]
    assert b["eval_share_s"] == 0 and b["build_s"] > 0  # only its 24 training rows ran
    built = sorted(json.loads(p.read_text())["rows"] for p in (tmp_path / "features").rglob("meta.json"))
    assert built == [16, 16, 24, 48]  # validation, test and the two training sets: nothing twice
    assert second["metrics"]["validation"] and second["metrics"]["test"]


def test_key_tracks_max_length_split_and_data(bert_dir, tmp_path, toy_classification_data):
    run = prepare(_config(bert_dir, tmp_path), toy_classification_data)
    sets = {s: run.tokenized[s] for s in ("train", "validation", "test")}
    key = frozen_cache.base_key(run, sets)
    assert frozen_cache.base_key(run, sets) == key  # deterministic
    short = prepare(_config(bert_dir, tmp_path, max_length=8), toy_classification_data)
    assert frozen_cache.base_key(short, {s: short.tokenized[s] for s in sets}) != key
    fewer = {**sets, "train": sets["train"].select(range(len(sets["train"]) - 1))}
    assert frozen_cache.base_key(run, fewer) != key
    root = tmp_path / "root"
    assert frozen_cache.cache_path(root, run, key, 2, "all", "float16") != frozen_cache.cache_path(
        root, run, key, 3, "all", "float16"
    )


def test_disk_path_reuse_and_sharing(bert_dir, tmp_path, toy_classification_data, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE_MEMORY_MB", "0")  # everything goes to the memory-mapped path
    first = train(_config(bert_dir, tmp_path / "a"), data=toy_classification_data, progress=False)[
        "train_info"
    ]["cache"]
    assert first["used"] and first["where"] == "disk" and not first["reused"] and first["build_s"] > 0
    again = train(_config(bert_dir, tmp_path / "a"), data=toy_classification_data, progress=False)[
        "train_info"
    ]["cache"]
    assert again["reused"] and again["build_s"] == 0 and again["key"] == first["key"]
    assert again["size_mb"] == first["size_mb"]
    # compare's shared cache at a lower split: a head run extends it instead of starting from the embeddings
    shared_root = tmp_path / "b"
    built = build_shared_cache(_config(bert_dir, shared_root), 1, data=toy_classification_data)
    assert Path(built["path"]).is_dir() and built["split"] == 1
    head = train(_config(bert_dir, shared_root), data=toy_classification_data, progress=False)["train_info"][
        "cache"
    ]
    assert head["source_split"] == 1 and not head["reused"]
    last_n = train(
        _config(bert_dir, shared_root, strategy="last-n", layers=2),
        data=toy_classification_data,
        progress=False,
    )["train_info"]["cache"]
    assert last_n["reused"] and last_n["split"] == 1  # exactly the shared cache


def test_no_cache_for_strategies_that_train_the_embeddings(bert_dir, tmp_path, toy_classification_data):
    for strategy in ("full", "lora", "bitfit"):
        run = prepare(_config(bert_dir, tmp_path, strategy=strategy), toy_classification_data)
        assert frozen_cache.plan(run) is None, strategy


def test_bf16_pass_is_close_and_kept_apart(bert_dir, tmp_path, toy_classification_data, monkeypatch):
    """--cache-precision bf16: the frozen pass runs under bfloat16 autocast; its features sit in their
    own folder (never mixed with float32 ones) and give logits close to the float32 model's."""
    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "float32")
    run = prepare(_config(bert_dir, tmp_path, strategy="last-n", layers=1, cache_precision="bf16"), toy_classification_data)
    run.model.eval()
    batch = _eval_batch(run)
    with torch.no_grad():
        expected = run.model(**batch).logits
    plan = frozen_cache.plan(run)
    assert plan.precision == "bf16"
    _, val, _, collator, info = frozen_cache.apply(plan, run, tuple(run.tokenized[s] for s in ("train", "validation", "test")))
    with torch.no_grad():
        got = run.model(**collator([val[i] for i in range(8)])).logits
    frozen_cache.restore(plan, run)
    assert info["precision"] == "bf16"
    assert not torch.equal(got, expected)  # it did run in bfloat16
    torch.testing.assert_close(got, expected, atol=5e-2, rtol=5e-2)
    sets = {s: run.tokenized[s] for s in ("train", "validation", "test")}
    key = frozen_cache.base_key(run, sets)
    root = tmp_path / "root"
    assert frozen_cache.cache_path(root, run, key, 1, "all", "float32", "bf16") != frozen_cache.cache_path(
        root, run, key, 1, "all", "float32", "fp32"
    )


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(frozen_cache, "native_bf16", lambda device=None: True)
    assert frozen_cache.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(frozen_cache, "native_bf16", lambda device=None: False)
    assert frozen_cache.resolve_precision("auto") == "fp32"
    assert frozen_cache.resolve_precision("bf16") == "bf16"
    assert frozen_cache.resolve_precision("fp32") == "fp32"
    assert TrainConfig(cache_precision="half").problems() == [
        "cache_precision='half' is unknown: use auto, bf16 or fp32"
    ]


def test_a_replaced_block_keeps_its_submodules_out_of_train_and_undo_restores_their_mode():
    """While the cache stands in for the frozen blocks, ``model.train()`` (which the Trainer calls every step) sets
    a replaced block's own flag but does not walk its submodules, which do not run; undoing the swap gives them the
    mode their block has by then."""
    from types import SimpleNamespace

    from torch import nn

    from tunelab.run.cache import _Swap

    blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)) for _ in range(3)])
    model = nn.Sequential(blocks)
    layout = SimpleNamespace(blocks=blocks, entry=None, block_input=("arg", 0), block_output=None)
    model.eval()
    swap = _Swap(layout, feed=None, skip_below=2)
    model.train()
    assert model.training and blocks[0].training and blocks[2][1].training  # live block: walked as usual
    assert not blocks[0][1].training and not blocks[1][1].training  # replaced blocks' submodules: not walked
    swap.undo()
    assert all(m.training for m in model.modules())
    assert "train" not in blocks[0].__dict__ and "forward" not in blocks[0].__dict__
    model.eval()
    assert not any(m.training for m in model.modules())


def test_tokens_key_reads_a_selected_shuffled_split_as_its_rows_say():
    """The key is read from the split's Arrow column in one piece; a split that is a selection in another order
    (an index mapping over its table) must hash the rows it shows, as reading them one by one does."""
    import datasets
    import numpy as np

    from tunelab.run.cache import tokens_key

    class Rows:  # the same rows as plain lists: the row-by-row path
        def __init__(self, ds):
            self.column_names = ds.column_names
            self._columns = {c: [list(map(int, r)) for r in ds[c]] for c in ("input_ids", "token_type_ids") if c in ds.column_names}

        def __getitem__(self, column):
            return self._columns[column]

    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 1000, size=int(rng.integers(0, 9))).tolist() for _ in range(40)]
    ds = datasets.Dataset.from_dict({"input_ids": rows, "token_type_ids": [[0] * len(r) for r in rows], "label": [0] * 40})
    picked = ds.shuffle(seed=1).select(range(0, 40, 3))
    for split in (ds, picked, picked.remove_columns("token_type_ids"), ds.select([])):
        assert tokens_key(split) == tokens_key(Rows(split))
    assert tokens_key(picked) != tokens_key(ds.select(range(len(picked))))


def _train_store(root: Path) -> Path:
    """The train split's store under a cache root (the one with the most rows)."""
    import json

    stores = [p.parent for p in root.rglob("meta.json")]
    return max(stores, key=lambda p: json.loads((p / "meta.json").read_text())["rows"])


@pytest.mark.parametrize("damage", ["truncated features", "missing offsets", "garbage meta"])
def test_a_damaged_store_is_built_again_and_the_run_matches_a_fresh_one(bert_dir, tmp_path, toy_classification_data,
                                                                        damage):
    """A store cut short (a full disk, a copy), missing a file or with an unreadable meta.json was reused as whole
    (a traceback at every later run) or kept forever beside a rebuilt copy thrown away (the cache off for good):
    it is now seen as damaged, replaced, and the run gives what a fresh cache gives."""
    config = _config(bert_dir, tmp_path)
    first = train(config, data=toy_classification_data, progress=False)
    store = _train_store(tmp_path / "features")
    if damage == "truncated features":
        with open(store / "features.bin", "r+b") as f:
            f.truncate(100)
    elif damage == "missing offsets":
        (store / "offsets.npy").unlink()
    else:
        (store / "meta.json").write_text('{"complete": tru')
    assert not frozen_cache._complete(store) and frozen_cache._damage(store)
    again = train(config, data=toy_classification_data, progress=False)
    cache = again["train_info"]["cache"]
    assert cache["used"] and not cache["reused"], cache
    assert frozen_cache._complete(store)
    assert again["metrics"]["validation"]["loss"] == pytest.approx(first["metrics"]["validation"]["loss"], abs=1e-6)
    assert not list((tmp_path / "features").rglob(".tmp-*"))


def test_a_build_killed_midway_leaves_no_temporary_folder_after_the_next_build(bert_dir, tmp_path,
                                                                              toy_classification_data):
    """A kill (SIGKILL, the OOM killer) skips atomic_dir's clean-up: its .tmp- folder stayed in the cache for good.
    The next build in that folder removes the ones whose process on this host is gone, and leaves a live one."""
    import subprocess
    import sys

    config = _config(bert_dir, tmp_path)
    train(config, data=toy_classification_data, progress=False)
    store = _train_store(tmp_path / "features")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = store.parent / (frozen_cache._tmp_prefix(store).replace(f"@{__import__('os').getpid()}@",
                                                                      f"@{dead.stdout.strip()}@") + "x")
    live = store.parent / (frozen_cache._tmp_prefix(store) + "y")  # this process: still building
    for folder in (orphan, live):
        folder.mkdir()
        (folder / "features.bin").write_bytes(b"0" * 1000)
    import shutil

    shutil.rmtree(store)  # the next run builds there
    train(config, data=toy_classification_data, progress=False)
    assert not orphan.exists() and live.exists()


def test_a_store_that_does_not_fit_on_the_disk_trains_without_the_cache_in_one_note(bert_dir, tmp_path,
                                                                                   toy_classification_data, monkeypatch):
    """Writing a memory map over a sparse file on a full disk killed the process (SIGBUS, no message, the half-
    written store left filling the disk). A store that does not fit is not started: the run trains uncached and
    says why."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**20, 10 * 2**20 - 2**20, 2**20))
    record = train(_config(bert_dir, tmp_path), data=toy_classification_data, progress=False)
    cache = record["train_info"]["cache"]
    assert not cache["used"] and "MiB are free on the disk of" in cache["fallback"], cache
    assert any("put the cache elsewhere (--cache-dir or TUNELAB_CACHE)" in w for w in record["train_info"]["notes"])
    assert not list((tmp_path / "features").rglob("features.bin"))


def test_reserve_turns_a_full_disk_into_an_oserror(tmp_path, monkeypatch):
    import errno
    import os

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left"):
        frozen_cache._reserve(tmp_path / "features.bin", 4096)
    monkeypatch.setattr(os, "posix_fallocate", lambda fd, o, n: (_ for _ in ()).throw(OSError(errno.EOPNOTSUPP, "no")))
    frozen_cache._reserve(tmp_path / "sparse.bin", 4096)  # a file system without fallocate: sparse, as before
    assert (tmp_path / "sparse.bin").stat().st_size == 4096


def test_a_hub_model_gets_a_new_identity_when_its_cached_snapshot_changes(tmp_path, monkeypatch):
    """A hub id's identity was its name: a new revision in the local hub cache reused the old revision's cached
    features, estimates and measurements (wrong numbers, silently). It is now the snapshot refs/main points to."""
    import huggingface_hub.constants as hub

    from tunelab.models import model_identity

    repo = tmp_path / "hub" / "models--someone--tiny"
    for sha, weights in (("a" * 40, b"one"), ("b" * 40, b"two, longer")):
        snap = repo / "snapshots" / sha
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        (snap / "model.safetensors").write_bytes(weights)
    (repo / "refs").mkdir()
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    (repo / "refs" / "main").write_text("a" * 40)
    first = model_identity("someone/tiny")
    (repo / "refs" / "main").write_text("b" * 40)
    second = model_identity("someone/tiny")
    assert first["revision"] == "a" * 40 and second["revision"] == "b" * 40 and first != second
    assert model_identity("someone/not-cached")["revision"] is None  # no snapshot: the name, as before


def test_base_dtype_auto_holds_the_base_in_float32_where_the_cache_runs_the_frozen_blocks(monkeypatch):
    """`--base-dtype bf16` with the cache is refused; `auto` got past that check and, where bf16 is native, the
    cache's fp32 check then failed on a bf16 base (a dtype error, the run uncached). auto now resolves to fp32 there."""
    from tunelab.run.training import base_dtype

    monkeypatch.setattr(frozen_cache, "native_bf16", lambda device=None: True)
    top_only = TrainConfig(strategy="lora", lora_layers=1, base_dtype="auto")
    assert base_dtype(top_only) == torch.float32
    assert base_dtype(top_only.replace(cache=False)) == torch.bfloat16
    assert base_dtype(TrainConfig(strategy="lora", base_dtype="auto")) == torch.bfloat16  # every block adapted: no cache


def test_the_shared_cache_is_the_one_runs_look_up_whatever_cache_dtype_asks(bert_dir, tmp_path, toy_classification_data,
                                                                            monkeypatch):
    """The shared cache a comparison builds first read ``cache_dtype`` itself, and kept a value the runs' own plan
    turns into float16 (bfloat16): it was built under another key and no run ever found it. One reading now."""
    monkeypatch.setenv("TUNELAB_CACHE_MEMORY_MB", "0")
    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "bfloat16")
    root = tmp_path / "shared"
    built = build_shared_cache(_config(bert_dir, root, strategy="last-n", layers=2), 1, data=toy_classification_data)
    last_n = train(_config(bert_dir, root, strategy="last-n", layers=2), data=toy_classification_data,
                   progress=False)["train_info"]["cache"]
    assert last_n["reused"] and last_n["split"] == 1 and Path(built["path"]).is_dir()


def test_a_cross_text_run_does_not_reuse_the_features_of_per_text_attention(tiny_llama_dir, tmp_path, toy_lm_data):
    """A causal LM's frozen layers computed with each packed text attending only to itself (--document-mask, the
    default) were reused by a --no-document-mask run of the same model and data (same tokens, same key): it trained
    on features its own attention never computes, and its losses left the uncached run's. Each setting has its own."""
    shared = tmp_path / "features"
    config = dict(strategy="last-n", layers=1, max_length=32, forgetting=False, cache_dir=str(shared))
    per_text = train(_config(tiny_llama_dir, tmp_path / "a", **config), data=toy_lm_data, progress=False)
    across = train(_config(tiny_llama_dir, tmp_path / "b", document_mask=False, **config), data=toy_lm_data,
                   progress=False)
    plain = train(_config(tiny_llama_dir, tmp_path / "c", document_mask=False, cache=False, **config),
                  data=toy_lm_data, progress=False)
    assert per_text["train_info"]["cache"]["used"] and across["train_info"]["cache"]["used"]
    assert across["train_info"]["cache"]["key"] != per_text["train_info"]["cache"]["key"]
    assert not across["train_info"]["cache"]["reused"]
    assert across["metrics"]["validation"]["loss"] == pytest.approx(plain["metrics"]["validation"]["loss"], abs=1e-5)


def test_why_the_cache_is_not_used_is_said_once_on_the_console_and_in_the_record(bert_dir, tmp_path,
                                                                                  toy_classification_data, monkeypatch,
                                                                                  caplog):
    """A body whose blocks are not layers (XLM) trained without the cache with a note in train_info.notes only: the
    run's warnings are logged before the cache is planned, so the console never said it."""
    import logging

    from tunelab.models.layout import Layout

    monkeypatch.setattr(Layout, "blocks_problem", lambda self: "its blocks are made up for this test")
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        record = train(_config(bert_dir, tmp_path), data=toy_classification_data, progress=False)
    note = "frozen-layer cache not used for this bert model, trained without it: its blocks are made up for this test"
    assert not record["train_info"]["cache"]["used"]
    assert record["train_info"]["notes"].count(note) == 1
    assert [r.getMessage() for r in caplog.records].count(note) == 1


def test_frozen_blocks_above_the_models_depth_freeze_everything_below_the_head(bert_dir, tmp_path,
                                                                                toy_classification_data):
    """A strategy whose frozen_blocks counted more blocks than the model has (a plugin counting ALBERT's 12 layers
    over its one shared block) silently trained without the cache: it means every block, as head's own plan."""
    run = prepare(_config(bert_dir, tmp_path), toy_classification_data)
    head = frozen_cache.plan(run)
    run.strategy.frozen_blocks = lambda model, layout, config: layout.num_blocks + 9
    deeper = frozen_cache.plan(run)
    assert deeper is not None and (deeper.split, deeper.positions) == (head.split, head.positions) == (3, "first")
    assert not [w for w in run.warnings if "frozen-layer cache" in w]
    # the same depth for the cache a comparison shares between its runs (one rule: Strategy.frozen_prefix)
    from tunelab.compare.runner import _frozen_split
    from tunelab.strategies import STRATEGIES, register_strategy
    from tunelab.strategies.head import Head

    class DeepFrozen(Head):
        name, summary = "deep-frozen", "counts more blocks than there are"

        def frozen_blocks(self, model, layout, config):
            return layout.num_blocks + 9

    before = dict(STRATEGIES)
    try:
        register_strategy(DeepFrozen)
        assert _frozen_split(_config(bert_dir, tmp_path, strategy="deep-frozen")) == 3
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(before)
