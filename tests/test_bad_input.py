"""Bad input, table-driven: each case is one line on stderr starting ``tunelab: error:`` that names the
thing, exit code 2, no traceback, and nothing written to ``--out``. Everything fails before training."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tunelab.cli.main import main

GOOD_ROWS = "text,label\n" + "".join(
    f"review number {i} is {'fine' if i % 2 else 'poor'},{'pos' if i % 2 else 'neg'}\n" for i in range(30)
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@dataclass
class Case:
    name: str
    args: Callable[[Path], list[str]]
    """Builds the arguments (after ``train``) from a scratch folder; files it needs are written there."""
    expect: tuple[str, ...]
    """Substrings (case-insensitive) the error line must contain: the thing it names."""


def good(tmp: Path) -> str:
    return str(write(tmp / "good.csv", GOOD_ROWS))


def split_folder(tmp: Path) -> str:
    write(tmp / "splits" / "train.csv", GOOD_ROWS)
    write(tmp / "splits" / "validation.csv", "text,label\na fine one,pos\na weird one,meh\n")
    write(tmp / "splits" / "test.csv", "text,label\na poor one,neg\nnice,pos\n")
    return str(tmp / "splits")


CASES = [
    # ---- data
    Case("missing file", lambda t: ["--data", str(t / "nope.csv")], ("nope.csv",)),
    Case(
        "unknown column",
        lambda t: ["--data", good(t), "--text-column", "review"],
        ("review", "text", "label"),
    ),
    Case(  # trained on the conversations in silence before
        "unknown column of chat rows",
        lambda t: ["--task", "causal-lm", "--text-column", "body", "--data",
                   str(write(t / "chat.jsonl", '{"messages": [{"role": "user", "content": "hi"}, '
                                               '{"role": "assistant", "content": "hello"}]}\n' * 20))],
        ("chat.jsonl", "body", "--text-column", "messages"),
    ),
    Case(
        "unknown label column", lambda t: ["--data", good(t), "--label-column", "stars"], ("stars", "label")
    ),
    Case(
        "whitespace texts",
        lambda t: ["--data", str(write(t / "ws.csv", "text,label\n" + "   ,pos\n \t ,neg\n" * 10))],
        ("text",),
    ),
    Case(
        "missing labels",
        lambda t: ["--data", str(write(t / "nl.csv", GOOD_ROWS + "one more,\n"))],
        ("label",),
    ),
    Case("label only in validation", lambda t: ["--data", split_folder(t)], ("meh",)),
    Case(
        "single class",
        lambda t: [
            "--data",
            str(write(t / "one.csv", "text,label\n" + "".join(f"t {i},pos\n" for i in range(20)))),
        ],
        ("pos",),
    ),
    Case(
        "an ID column as the label",
        lambda t: ["--data", str(write(t / "ids.csv", "text,label,id\n" + "".join(
            f"ticket {i} text,{'a' if i % 2 else 'b'},T-{i}\n" for i in range(40)))), "--label-column", "id"],
        ("'id'", "40 distinct values", "--label-column"),
    ),
    Case(
        "non-UTF-8 bytes",
        lambda t: [
            "--data",
            str(write(t / "latin.csv", GOOD_ROWS.encode() + "caf\xe9 au lait,pos\n".encode("latin-1"))),
        ],
        ("utf-8",),
    ),
    Case(
        "malformed JSONL line",
        lambda t: [
            "--data",
            str(write(t / "bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')),
        ],
        ("bad.jsonl", "2"),
    ),
    Case(
        "float labels for classification",
        lambda t: [
            "--data",
            str(write(t / "fl.csv", "text,label\n" + "".join(f"t {i},{i / 7:.3f}\n" for i in range(20)))),
            "--task",
            "classification",
        ],
        ("label",),
    ),
    Case("empty file", lambda t: ["--data", str(write(t / "empty.csv", ""))], ("empty.csv", "empty")),
    Case("a short .txt file", lambda t: ["--data", str(write(t / "short.txt", "text,label\n" + "a fine film,pos\n" * 60))],
         ("short.txt", "only 1 example;", "plain text is read for language modelling", "make 1;", ".csv")),
    Case("label column named as the text", lambda t: ["--data", good(t), "--text-column", "label"],
         ("good.csv", "'label'", "both the label column and a text column", "--label-column")),
    Case("label column named as a pair's second text", lambda t: ["--data", good(t), "--text-column", "text,label"],
         ("good.csv", "'label'", "both the label column and a text column")),
    Case(
        "CSV with header only",
        lambda t: ["--data", str(write(t / "header.csv", "text,label\n"))],
        ("header.csv",),
    ),
    Case(
        "directory where a file is expected",
        lambda t: ["--data", str((t / "emptydir").mkdir() or t / "emptydir")],
        ("emptydir",),
    ),
    Case(
        "unknown built-in dataset",
        lambda t: ["--data", "rotten-tomatos"],
        ("rotten-tomatos", "rotten-tomatoes"),
    ),
    # ---- model and strategy
    Case("unknown model name", lambda t: ["--data", good(t), "--model", "minilmm"], ("minilmm", "minilm")),
    Case("unknown strategy", lambda t: ["--data", good(t), "--strategy", "lroa"], ("lroa", "(did you mean lora?)", "full")),
    Case(
        "head for causal LM",
        lambda t: [
            "--data",
            str(write(t / "doc.txt", "".join(f"Paragraph {i} of some plain text.\n\n" for i in range(20)))),
            "--task",
            "causal-lm",
            "--strategy",
            "head",
        ],
        ("head", "classification"),
    ),
    Case(
        "max length beyond the model's",
        lambda t: ["--data", good(t), "--model", "minilm", "--max-length", "100000"],
        ("--max-length", "512"),
    ),
    Case(
        "model folder without config.json",
        lambda t: ["--data", good(t), "--model", str((t / "nomodel").mkdir() or t / "nomodel")],
        ("nomodel", "config.json"),
    ),
    # ---- options
    Case("negative lr", lambda t: ["--data", good(t), "--lr", "-0.001"], ("--lr",)),
    Case("zero epochs", lambda t: ["--data", good(t), "--epochs", "0"], ("--epochs",)),
    Case("validation fraction above a half", lambda t: ["--data", good(t), "--validation-fraction", "1.5"],
         ("--validation-fraction must be in (0, 0.5), got 1.5",)),
    Case("batch size 0", lambda t: ["--data", good(t), "--batch-size", "0"], ("--batch-size",)),
    Case(
        "data fraction above 1", lambda t: ["--data", good(t), "--data-fraction", "2"], ("--data-fraction",)
    ),
    Case("unknown task", lambda t: ["--data", good(t), "--task", "regression"], ("--task", "regression")),
    Case("non-numeric epochs", lambda t: ["--data", good(t), "--epochs", "many"], ("--epochs", "many")),
    Case("unknown flag", lambda t: ["--data", good(t), "--learning-rate", "1e-3"], ("--learning-rate",)),
    Case(
        "bad YAML --config",
        lambda t: ["--config", str(write(t / "bad.yaml", "epochs: [1, 2\nlr: 3\n"))],
        ("bad.yaml",),
    ),
    Case(
        "unknown option in --config",
        lambda t: ["--config", str(write(t / "opt.yaml", "epochz: 2\n"))],
        ("epochz",),
    ),
    Case(
        "wrong type in --config",
        lambda t: ["--config", str(write(t / "ty.yaml", "batch_size: lots\n"))],
        ("batch_size", "lots"),
    ),
    Case("--config is a directory", lambda t: ["--config", str(t)], ("config",)),
    Case(
        "--out is a file",
        lambda t: ["--data", good(t), "--out", str(write(t / "taken.txt", "x"))],
        ("taken.txt",),
    ),
    Case(
        "--cache-dir under a file",
        lambda t: ["--data", good(t), "--cache-dir", str(write(t / "taken.txt", "x") / "cache")],
        ("--cache-dir", "taken.txt", "choose another --cache-dir"),
    ),
    Case(
        "--out under a file",
        lambda t: ["--data", good(t), "--out", str(write(t / "taken.txt", "x") / "run")],
        ("taken.txt", "no folder can be made under it", "choose another --out"),
    ),
    # ---- numbers out of their range (a traceback from numpy / transformers, or a run that means nothing)
    Case("a column named twice", lambda t: ["--data", str(write(t / "twice.csv", "text,label,label\n" + "".join(
        f"text {i},pos,neg\n" for i in range(20))))], ("twice.csv", "names column 'label' more than once")),
    Case("two unnamed columns holding data", lambda t: ["--data", str(write(t / "blank.csv", "text,label,,\n" + "".join(
        f"text {i},{'pos' if i % 2 else 'neg'},a,b\n" for i in range(20))))],  # said "names column '' more than once"
         ("blank.csv", "columns 3, 4 without a name", "name them in the header line, or delete them")),
    Case("a folder as --config", lambda t: ["--data", good(t), "--config", str(t)], ("is a folder", "YAML file")),
    Case("a folder as --reference-text", lambda t: ["--data", good(t), "--reference-text", str(t)],
         ("--reference-text", "is a folder", "plain text file")),
    Case("an empty --reference-text", lambda t: ["--data", good(t), "--reference-text", ""],  # was "is a folder"
         ("--reference-text is empty", "plain text file", "built-in reference")),
    Case("negative seed", lambda t: ["--data", good(t), "--seed", "-1"], ("--seed must be in [0, 2^32)",)),
    Case("infinite epochs", lambda t: ["--data", good(t), "--epochs", "inf"], ("--epochs must be positive and finite",)),
    Case("negative warm-up", lambda t: ["--data", good(t), "--warmup-ratio", "-0.5"], ("--warmup-ratio must be in [0, 1)",)),
    Case("negative weight decay", lambda t: ["--data", good(t), "--weight-decay", "-1"], ("--weight-decay must be 0 or more",)),
    Case("zero lora alpha", lambda t: ["--data", good(t), "--lora-alpha", "0"], ("--lora-alpha must be positive",)),
    Case("negative max length", lambda t: ["--data", good(t), "--max-length", "-3"],  # said only the range
         ("--max-length must be at least 8, got -3: pass e.g. 64 or 256, or leave it out for 128 (classification)",)),
    Case("resume and overwrite", lambda t: ["--data", good(t), "--resume", "--overwrite"], ("--resume", "--overwrite", "give one")),
    Case("a list in the YAML config", lambda t: ["--data", good(t), "--config", str(write(t / "l.yaml", "strategy: [lora]\n"))],
         ("option strategy is a list; give a str",)),
    Case("a number as a text option in the YAML config",  # YAML reads `model: 5` as an int: not a path
         lambda t: ["--data", good(t), "--config", str(write(t / "n.yaml", "model: 5\n"))],
         ("n.yaml", "option model has value 5, expected str", 'model: "5"')),
    Case("extra in the YAML config not a mapping",
         lambda t: ["--data", good(t), "--config", str(write(t / "x.yaml", "extra: 5\n"))],
         ("x.yaml", "option extra has value 5", "mapping")),
    Case("an empty --model", lambda t: ["--data", good(t), "--model", ""], ("--model is empty", "`tunelab models`")),
    Case("an empty --data", lambda t: ["--data", " "], ("--data is empty", "`tunelab datasets`")),
    Case("--out not UTF-8", lambda t: ["--data", good(t), "--out", os.fsdecode(os.fsencode(str(t)) + b"/run\xff")],
         ("is not a UTF-8 path", "valid UTF-8")),
]

SUBPROCESS_CASES = ["missing file", "unknown flag", "bad YAML --config"]


def run_in_process(case: Case, tmp: Path, capsys) -> tuple[int, str, Path]:
    out = tmp / "out"
    args = case.args(tmp)
    if "--out" not in args:
        args += ["--out", str(out)]
    try:
        code = main(["-q", "train", *args])
    except SystemExit as exc:  # argparse exits for unknown flags and bad types
        code = exc.code
    return code, capsys.readouterr().err, out


def check(case: Case, code: int, err: str, out: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("tunelab: warning:")]
    assert code == 2, (case.name, code, err)
    assert len(lines) == 1 and lines[0].startswith("tunelab: error:"), (case.name, err)
    assert "Traceback" not in err
    for needle in case.expect:
        assert needle.lower() in lines[0].lower(), (case.name, needle, lines[0])
    assert not out.exists() or not any(out.iterdir()), (case.name, sorted(p.name for p in out.iterdir()))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_in_process(case: Case, tmp_path, capsys):
    code, err, out = run_in_process(case, tmp_path, capsys)
    check(case, code, err, out)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_as_a_real_process(name: str, tmp_path):
    case = next(c for c in CASES if c.name == name)
    out = tmp_path / "out"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab.cli.main", "-q", "train", *case.args(tmp_path), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    check(case, proc.returncode, proc.stderr, out)


def test_a_10_mb_text_is_not_an_error_it_is_truncated_with_a_warning(tmp_path, caplog):
    """A huge text is kept (truncated to --max-length with a warning), not refused."""
    from test_resume import make_tiny
    from tunelab.config import TrainConfig
    from tunelab.run.training import train

    model, _ = make_tiny(tmp_path)
    huge = ("word " * 2_000_000).strip()  # 10 MB on one line
    rows = "".join(
        f"short text {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(40)
    )
    data = write(tmp_path / "big.csv", f'text,label\n"{huge}",pos\n' + rows)
    assert data.stat().st_size > 10_000_000
    config = TrainConfig(model=str(model), data=str(data), strategy="head", epochs=1, batch_size=16, max_train_samples=16, max_eval_samples=8, max_length=32, out=str(tmp_path / "out"), save_steps=100)  # fmt: skip
    record = train(config, progress=False)
    notes = " ".join(record["train_info"]["notes"])
    assert record["metrics"]["test"]
    assert "truncated" in notes or "long" in notes, notes


def test_table_has_at_least_25_cases():
    print(
        f"\nbad-input table: {len(CASES)} cases in-process, {len(SUBPROCESS_CASES)} also as real subprocesses"
    )
    assert len(CASES) >= 25


def mamba_folder(tmp: Path) -> str:
    """A model folder whose architecture transformers can only load as a causal LM (the config is all that is read)."""
    write(tmp / "mamba" / "config.json", '{"model_type": "mamba", "vocab_size": 64, "hidden_size": 8, "num_hidden_layers": 1}')
    return str(tmp / "mamba")


COMPARE_CASES = [
    *(c.name for c in CASES[:16]),  # every data case
    "unknown model name", "model folder without config.json", "zero epochs", "batch size 0", "unknown task",
    "non-numeric epochs", "unknown flag", "bad YAML --config", "--out is a file", "max length beyond the model's",
]
COMPARE_ONLY = [
    Case("tolerance in points", lambda t: ["--data", good(t), "--tolerance", "2"], ("--tolerance 2 is a fraction", "0.01 is one point")),
    Case("max length beyond the model's with a soft prompt", lambda t: ["--data", good(t), "--model", "minilm", "--max-length", "512",
                                                                        "--strategies", "head,prompt-tuning"],
         ("--max-length 512", "prompt-tuning", "use at most 492")),
    Case("encoder for causal LM", lambda t: ["--data", str(write(t / "doc.txt", "".join(f"Paragraph {i} of some plain text. " * 40 + "\n\n" for i in range(30)))), "--task", "causal-lm",
                                            "--model", "minilm"], ("minilm", "encoder", "decoder")),
    Case("no classification class", lambda t: ["--data", good(t), "--model", mamba_folder(t)],
         ("mamba", "no classification class", "--task causal-lm")),
    Case("encoder-decoder model", lambda t: ["--data", good(t), "--model", str(write(t / "t5" / "config.json", '{"model_type": "t5", '
                                             '"vocab_size": 64, "d_model": 8, "num_layers": 1, "num_heads": 1}').parent)],
         ("t5", "encoder-decoder", "minilm")),
    Case("T5 encoder saved alone", lambda t: ["--data", good(t), "--model", str(write(t / "t5-encoder" / "config.json", '{"model_type": "t5", '
                                              '"is_encoder_decoder": false, "architectures": ["T5EncoderModel"], "vocab_size": 64, '
                                              '"d_model": 8, "num_layers": 1, "num_heads": 1}').parent)],
         ("t5", "encoder-decoder", "encoder alone", "minilm")),
]


@pytest.mark.parametrize("case", [c for c in CASES if c.name in COMPARE_CASES] + COMPARE_ONLY,
                         ids=lambda c: c.name)
def test_bad_input_to_compare_stops_it_before_any_run(case: Case, tmp_path, capsys):
    """The main job checks the data and the model once, up front: one line, exit 2, nothing written — not a
    folder of runs that all failed the same way."""
    out = tmp_path / "out"
    args = case.args(tmp_path)
    if "--out" not in args:
        args += ["--out", str(out)]
    try:
        strategies = [] if "--strategies" in args else ["--strategies", "head,lora"]
        code = main(["-q", "compare", *args, *strategies, "--no-pre-recommendation"])
    except SystemExit as exc:
        code = exc.code
    check(case, code, capsys.readouterr().err, out)


def test_model_names_a_hub_user_types_go_to_the_hub_and_typos_of_built_ins_do_not(tmp_path):
    """``gpt2`` and ``bert-base-uncased`` are hub ids without an org (the hub still serves them): they go to
    ``from_pretrained``; a near-miss of a built-in is a typo; a path that does not exist is said to be one. A hub
    lookup that fails says that it was one, and what to do."""
    from tunelab.errors import ModelError
    from tunelab.models.loading import load_problem, resolve_model

    assert resolve_model("gpt2") == "gpt2"
    assert resolve_model("bert-base-uncased") == "bert-base-uncased"
    assert resolve_model("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    for typo in ("minilmm", "MiniLM", "smollm"):
        with pytest.raises(ModelError, match="did you mean"):
            resolve_model(typo)
    for missing in (f"{tmp_path}/nothing", "./nothing", "a/b/c"):
        with pytest.raises(ModelError, match="does not exist: check the path"):
            resolve_model(missing)
    said = load_problem("gpt2", OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nmore"))
    assert said.startswith("We couldn't connect") and "looked up as a hub id" in said and "\n" not in said
    assert load_problem("minilm", OSError("broken")) == "broken"


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    """Offline mode off (conftest turns it on), the hub at a local port nothing listens on (no network is used), and
    an empty local hub cache: (the cache folder, the endpoint). The reachability check is made again in each test."""
    import socket

    import huggingface_hub.constants as hub

    from tunelab.models import loading

    with socket.socket() as sock:  # a port just free: connecting to it is refused at once
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(loading, "_hub_answer", None)
    monkeypatch.setattr(loading, "_offline_set_here", False)
    return tmp_path / "hub", endpoint


def _cached_hub_model(cache: Path, repo_id: str, model_dir: Path) -> None:
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / ("a" * 40))
    write(repo / "refs" / "main", "a" * 40)


def test_an_unreachable_hub_is_asked_again_and_its_offline_mode_ends(unreachable_hub, tiny_bert_dir, monkeypatch):
    """"The hub cannot be reached" was kept for the life of the process, with offline mode set for a cached model:
    in a notebook the hub stayed unreachable after the network came back. The answer now holds HUB_RECHECK_S
    seconds (one request, whatever the number of checks meanwhile); the offline mode set for a cached model is
    undone by the next check that finds the hub answering, and does not hide an uncached model's one line."""
    import types

    import huggingface_hub.constants as hub

    from tunelab.errors import ModelError
    from tunelab.models import loading

    cache, _ = unreachable_hub
    _cached_hub_model(cache, "someone/tiny", tiny_bert_dir)
    now, answers, asked = [0.0], ["ConnectError: down"], []
    monkeypatch.setattr(loading, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(loading, "_ask_hub", lambda: asked.append(now[0]) or answers[0])

    loading.check_hub("someone/tiny")
    assert hub.HF_HUB_OFFLINE and asked == [0.0]  # the cached model loads offline
    now[0] = 30.0
    loading.check_hub("someone/tiny")
    assert hub.HF_HUB_OFFLINE and asked == [0.0]  # within HUB_RECHECK_S: the answer holds, no request
    with pytest.raises(ModelError, match="not in the local hub cache"):
        loading.check_hub("someone/other")
    answers[0] = None  # the network is back
    now[0] = 30.0 + loading.HUB_RECHECK_S
    loading.check_hub("someone/tiny")
    assert asked == [0.0, now[0]] and not hub.HF_HUB_OFFLINE
    loading.check_hub("someone/other")  # asked of the hub now, as any hub id where it answers
    assert asked == [0.0, now[0]] and not hub.HF_HUB_OFFLINE


def test_a_hub_id_the_hub_cannot_serve_fails_at_once_in_one_line(unreachable_hub, tmp_path, capfd):
    """A hub id with no network (a machine without access to the hub): huggingface_hub retried every file with backoff
    and the run failed a minute or more later. One quick request now finds the hub unreachable, and the model, not in
    the local hub cache, is one line: it could not be fetched, why, and what to pass instead."""
    _, endpoint = unreachable_hub
    code = main(["-q", "train", "--model", "someone/some-model", "--data", good(tmp_path), "--out", str(tmp_path / "out")])
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("tunelab: error: model 'someone/some-model' could not be fetched")
    assert "no such local folder" in err and "not in the local hub cache" in err
    assert f"the hub ({endpoint}) cannot be reached (ConnectError: " in err
    assert "save_pretrained" in err and "check the name" in err and "HF_HUB_OFFLINE=1" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("base", ["someone/tiny-base", "legacy-base"])
def test_an_adapter_on_a_hub_base_the_hub_cannot_serve_fails_at_once_in_one_line(base, unreachable_hub, tiny_bert_dir,
                                                                                  tmp_path, capfd):
    """A LoRA artifact whose base model is a hub id (adapter_config.json) loaded it with from_pretrained, retrying as
    a hub id given to --model did; evaluate now says at once, in the same line, that the base could not be fetched.
    A legacy id without an org (``gpt2``, ``bert-base-uncased``: ``legacy-base``) was refused as a folder that 'no
    longer exists', even where the hub or its cache would serve it: it is asked of the hub like any hub id, and the
    line also says what to set if it was a folder that moved."""
    import json

    import huggingface_hub.constants as hub

    data = good(tmp_path)
    with pytest.MonkeyPatch.context() as offline:  # trained from the local folder, the hub not asked
        offline.setattr(hub, "HF_HUB_OFFLINE", True)
        assert main(["-q", "train", "--model", str(tiny_bert_dir), "--data", data, "--strategy", "lora", "--epochs",
                     "1", "--no-cache", "--out", str(tmp_path / "run")]) == 0
    adapter = tmp_path / "run" / "model" / "adapter_config.json"
    adapter.write_text(json.dumps({**json.loads(adapter.read_text()), "base_model_name_or_path": base}))
    capfd.readouterr()
    code = main(["-q", "evaluate", str(tmp_path / "run"), "--data", data])
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"model '{base}' could not be fetched" in err and "adapter_config.json" in err, err


def test_a_hub_model_in_the_local_cache_trains_with_or_without_offline_mode(unreachable_hub, tiny_bert_dir, tmp_path,
                                                                              monkeypatch, caplog):
    """The fast failure keeps the hub cache: with HF_HUB_OFFLINE=1 a cached hub id loads from it without a request;
    without it, an unreachable hub reads the cached model (said in one warning) instead of refusing it."""
    import huggingface_hub.constants as hub

    cache, _ = unreachable_hub
    _cached_hub_model(cache, "someone/tiny", tiny_bert_dir)
    data = good(tmp_path)
    for offline in (True, False):
        monkeypatch.setattr(hub, "HF_HUB_OFFLINE", offline)
        with caplog.at_level("WARNING", logger="tunelab"):
            code = main(["-q", "train", "--model", "someone/tiny", "--data", data, "--strategy", "head", "--epochs",
                         "1", "--no-cache", "--out", str(tmp_path / f"out-{offline}")])
        assert code == 0
        assert ("reading 'someone/tiny' from the local hub cache" in caplog.text) is not offline
        caplog.clear()


def test_a_run_folder_or_an_adapter_given_as_the_model_says_what_to_pass(tmp_path):
    from tunelab.errors import ModelError
    from tunelab.models.loading import resolve_model

    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"is a run folder, not a model: its trained model is .*run/model; pass that"):
        resolve_model(str(tmp_path / "run"))
    (tmp_path / "lora" / "model").mkdir(parents=True)
    (tmp_path / "lora" / "model" / "adapter_config.json").write_text("{}")
    for given in (tmp_path / "lora", tmp_path / "lora" / "model"):
        with pytest.raises(ModelError, match=r"holds a peft adapter .*: pass its base model, or train with --merge"):
            resolve_model(str(given))
    # the base the adapter records is named; a --merge run's whole model (model/merged/) is the one to pass
    (tmp_path / "lora" / "model" / "adapter_config.json").write_text('{"base_model_name_or_path": "/models/my-bert"}')
    with pytest.raises(ModelError, match=r"holds a peft adapter .*: pass its base model \(/models/my-bert\), or train"):
        resolve_model(str(tmp_path / "lora"))
    (tmp_path / "lora" / "model" / "merged").mkdir()
    (tmp_path / "lora" / "model" / "merged" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"the adapter folded into a whole model is .*lora/model/merged: pass that"):
        resolve_model(str(tmp_path / "lora"))
    weights = tmp_path / "run" / "model" / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelError, match=r"is a file of the model folder .*run/model; pass the folder"):
        resolve_model(str(weights))
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(ModelError, match=r"is a file, not a model folder: pass the folder that holds it"):
        resolve_model(str(tmp_path / "w.bin"))
    # a sentence-transformers folder whose transformer sits in 0_Transformer/, or a folder of several models
    st = tmp_path / "st"
    (st / "0_Transformer").mkdir(parents=True)
    (st / "0_Transformer" / "config.json").write_text("{}")
    (st / "modules.json").write_text("[]")
    with pytest.raises(ModelError, match=r"has no config.json, but its folder .*st/0_Transformer is a model: pass that"):
        resolve_model(str(st))
    # beside its pooling module's settings (1_Pooling/config.json): the folder whose config names a model type is the
    # model, where the message had said "2 of its folders are models (0_Transformer, 1_Pooling): pass one of them"
    (st / "0_Transformer" / "config.json").write_text('{"model_type": "bert"}')
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}')
    with pytest.raises(ModelError, match=r"has no config.json, but its folder .*st/0_Transformer is a model: pass that"):
        resolve_model(str(st))
    for name in ("a", "b"):
        (tmp_path / "many" / name).mkdir(parents=True)
        (tmp_path / "many" / name / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"has no config.json, but 2 of its folders are models \(a, b\): pass one"):
        resolve_model(str(tmp_path / "many"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"is not a transformers folder \(no config.json\)"):
        resolve_model(str(tmp_path / "empty"))


def test_a_tokenizer_without_any_special_token_pads_with_the_configs_or_is_refused_in_one_line(tmp_path):
    """A bare word-level tokenizer (no pad, end-of-text or unknown token) pads with the token the model's config
    names for end of text, as transformers' own pad = eos convention does; with none named, one line says what to
    add (before: a traceback from the first padded batch)."""
    import transformers as T
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tunelab.errors import ModelError
    from tunelab.models import load_tokenizer

    words = ["</s>", "the", "a", "film", "was", "good", "bad"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = T.PreTrainedTokenizerFast(tokenizer_object=backend)
    assert tokenizer.pad_token is tokenizer.eos_token is tokenizer.unk_token is None
    for name, eos in (("named", 0), ("unnamed", None)):
        T.LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, bos_token_id=None, eos_token_id=eos, pad_token_id=None).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    loaded = load_tokenizer(str(tmp_path / "named"))
    assert loaded.pad_token == "</s>" and loaded(["the film", "a good film was bad"], padding=True)["input_ids"][0][-1] == 0
    with pytest.raises(ModelError, match=r"has no padding, end-of-text or unknown token, and the model's config names "
                                         r"none, so batches cannot be padded: add one"):
        load_tokenizer(str(tmp_path / "unnamed"))


def test_a_model_folder_without_tokenizer_files_is_refused_in_one_line(tiny_bert_dir, tmp_path):
    """transformers 5 builds an empty tokenizer (special tokens only) for a folder that holds a model but no tokenizer
    files; training on it ran, every word the unknown token (before: no error at all, a model that read no word)."""
    import shutil

    from tunelab.errors import ModelError
    from tunelab.models import load_tokenizer

    (tmp_path / "m").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert_dir / name, tmp_path / "m" / name)
    with pytest.raises(ModelError, match=r"has no tokenizer: the one transformers built for it knows \d+ token\(s\), its "
                                         r"special tokens only, .*save the model's tokenizer beside it"):
        load_tokenizer(str(tmp_path / "m"))
    assert len(load_tokenizer(str(tiny_bert_dir))) > 5  # the folder with its tokenizer loads as before


def test_a_quantized_checkpoint_whose_library_is_missing_is_refused_in_one_line(tiny_bert_dir, tmp_path):
    """A checkpoint saved 4-bit with bitsandbytes, on a machine without it: transformers raises ImportError, which
    now becomes the one-line ModelError (before: a traceback)."""
    import importlib.util
    import json
    import shutil

    from tunelab.errors import ModelError
    from tunelab.models import load_model

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    folder = tmp_path / "q"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"^cannot load '.*q' for classification: .*bitsandbytes"):
        load_model(str(folder), task="classification", label_names=["neg", "pos"])


def test_a_broken_or_unknown_model_config_says_what_to_do(tiny_bert_dir, tmp_path, capsys):
    """A config.json cut short, or naming a model type this transformers does not know: transformers' own sentence
    said what was wrong but not what to do."""
    import json
    import shutil

    from tunelab.cli.main import main

    broken, unknown, untyped = tmp_path / "broken", tmp_path / "unknown", tmp_path / "untyped"
    for folder in (broken, unknown, untyped):
        shutil.copytree(tiny_bert_dir, folder)
    (broken / "config.json").write_text((broken / "config.json").read_text()[:40])
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "model_type": "frobnicator"}))
    # a config without its model_type (written by hand): transformers said it "should have a `model_type` key"
    (untyped / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "model_type"}))
    data = good(tmp_path)
    for folder, said in ((broken, "is not a valid JSON file: repair it, or save the model there again with save_pretrained"),
                         (unknown, "does not know the model type frobnicator: upgrade transformers (pip install -U "
                                   "transformers), or pass --trust-remote-code"),
                         (untyped, "Should have a `model_type` key in its config.json: add the model's type to it "
                                   '(e.g. "model_type": "bert"), or save the model there again with save_pretrained')):
        assert main(["train", "--model", str(folder), "--data", data, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
        # AutoTokenizer reads the config first: the line names the config, not the tokenizer, as what failed
        assert "cannot read the config of" in err and "tokenizer" not in err, err


def test_a_disk_that_fills_during_a_run_is_one_line_that_says_to_resume(tmp_path, capsys, monkeypatch):
    """A write that fails mid-run (a full disk, a folder made read-only) is one line naming the file and saying what
    to do, exit 1: the last checkpoint is kept for --resume."""
    import errno

    import tunelab.run.training

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "checkpoints" / "x"))

    monkeypatch.setattr(tunelab.run.training, "train", full)
    code = main(["-q", "train", "--data", good(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot write" in err and "No space left on device" in err and "--resume" in err


def test_a_full_disk_met_by_safetensors_is_the_same_one_line(tmp_path, capsys, monkeypatch):
    """safetensors' SafetensorError is no OSError: a checkpoint or model written when the disk filled ended in a
    traceback ('... No space left on device (os error 28)') where an OSError got one line and exit 1."""
    from safetensors import SafetensorError

    import tunelab.run.training

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(tunelab.run.training, "train", full)
    code = main(["-q", "train", "--data", good(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot write: No space left on device" in err and "--resume" in err

    def other(*args, **kwargs):  # a safetensors error that is not the disk's stays the error it is
        raise SafetensorError("Error while deserializing header: invalid JSON")

    monkeypatch.setattr(tunelab.run.training, "train", other)
    with pytest.raises(SafetensorError):
        main(["-q", "train", "--data", good(tmp_path), "--out", str(tmp_path / "out2")])


def test_the_python_api_says_bad_arguments_in_tunelabs_words(tmp_path):
    """From a notebook, train({...}) failed with "'dict' object has no attribute 'task'", train(42) and compare(base,
    42) and predict(out, 42) with "'int' object is not iterable", config.replace(modle=...) with dataclasses'
    TypeError, and data=[] with 'got a list': each is now one TunelabError line, and a dict of settings is a config."""
    import tunelab
    from tunelab import TrainConfig
    from tunelab.config import as_config
    from tunelab.data import load_task_data
    from tunelab.errors import ConfigError, DataError, StrategyError

    assert as_config({"model": "minilm", "epochs": "2"}) == TrainConfig(model="minilm", epochs=2)
    with pytest.raises(ConfigError, match=r"train\(config\): unknown option\(s\) modle"):
        tunelab.train({"modle": "minilm"})
    with pytest.raises(ConfigError, match=r"train\(config\) must be a TrainConfig \(or a dict of its settings\); got a int"):
        tunelab.train(42)
    with pytest.raises(StrategyError, match=r"strategies are names.*got a int: 42"):
        tunelab.compare({"model": "minilm"}, 42)
    with pytest.raises(ConfigError, match=r"predict takes a text or a list of texts \(str\); got a int: 42"):
        tunelab.predict(tmp_path, 42)
    with pytest.raises(ConfigError, match=r"predict takes a text or a list of texts \(str\); got a NoneType: None"):
        tunelab.predict(tmp_path, None)  # was a TypeError from list(): 'NoneType' object is not iterable
    with pytest.raises(ConfigError, match=r"got a NoneType: None"):
        tunelab.predict(tmp_path, ["a film", None])  # was predicted as the text 'None'
    with pytest.raises(ConfigError, match=r"TrainConfig has no setting modle; the settings are model, data"):
        TrainConfig().replace(modle="x")
    with pytest.raises(DataError, match=r"the list given as data is empty"):
        load_task_data([])
    with pytest.raises(DataError, match=r"the list given as data holds a str \('great film'\): give one dict per example"):
        load_task_data(["great film"])


def test_every_numeric_option_out_of_its_range_says_what_to_pass():
    """`--max-length -3` got "must be at least 8, got -3" and no word on what to do; every numeric option's message now
    names an example and what leaving the option out gives."""
    import dataclasses

    from tunelab.config import RANGES, TrainConfig

    kinds = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    for name in RANGES:
        value = -3 if "int" in kinds[name] else -0.5
        said = TrainConfig(model="minilm", data="x", **{name: value}).problems()
        assert len(said) == 1 and said[0].startswith(f"{name}= must be "), (name, said)  # from Python: its keyword
        assert f"got {value}: pass e.g. " in said[0] and ", or leave it out for " in said[0], said[0]


def test_compare_and_recommend_numbers_out_of_range_say_what_to_pass(capsys):
    """--seeds 0, --halving 0.5, --budget-minutes 0 and --memory-gb -1 said only the range they missed."""
    from tunelab.advice.recommend import _candidates
    from tunelab.compare.runner import _problems
    from tunelab.config import TrainConfig

    said = " ".join(_problems(TrainConfig(model="minilm", data="x"), ["head"], 0, [1.0], {}, [1.0], -1.0))
    assert "seeds= must be at least 1, got 0: pass e.g. 3, or leave it out for one seed" in said
    assert "tune_lr_epochs= must be positive and finite, got -1: pass e.g. 0.5, or leave it out for 1 epoch" in said
    with pytest.raises(Exception, match="got -1: pass e.g. 16, or leave it out for this machine's memory"):
        _candidates(["head"], "classification", None, -1.0)
    for flag, value in (("--halving", "0.5"), ("--budget-minutes", "0")):
        assert main(["compare", "--data", "x", "--model", "minilm", flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag} must be " in err and f"got {value}: pass e.g. " in err and "leave it out for" in err, err


def test_compare_checks_its_options_before_it_reads_the_data(tmp_path, capsys):
    """compare(halving=0.5, ...) was refused only once its data was read (a large file read in full first; a broken
    one refused as data, the option said nowhere), while the command checked --halving and --budget-minutes itself, a
    copy of the same checks. One check now, before the data: from Python and from the command, a bad option with data
    that cannot be read is the option's one line."""
    import inspect

    from tunelab import compare
    from tunelab.cli import compare as cli_compare
    from tunelab.config import TrainConfig
    from tunelab.errors import ConfigError

    broken = write(tmp_path / "broken.parquet", b"not a parquet file")
    for option, said in (({"halving": 0.5}, "halving= must be at least 1"),
                         ({"budget_minutes": 0}, "budget_minutes= must be a positive number of minutes")):
        for base, data in ((TrainConfig(model="minilm", data=str(broken)), None), (TrainConfig(model="minilm"), 42)):
            with pytest.raises(ConfigError) as caught:
                compare(base, ["head"], out=tmp_path / "o", data=data, log=None, **option)
            assert str(caught.value).startswith(said) and "parquet" not in str(caught.value), caught.value
    for flag, value in (("--halving", "0.5"), ("--budget-minutes", "0")):
        assert main(["compare", "--model", "minilm", "--data", str(broken), "--strategies", "head",
                     "--out", str(tmp_path / "o"), flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{flag} must be " in err, err
    assert not (tmp_path / "o").exists()
    # the command holds no copy of these checks: it calls compare's
    assert "out_of_range" not in inspect.getsource(cli_compare) and "args.halving >" not in inspect.getsource(cli_compare)


def test_compare_refuses_resume_with_overwrite_from_python_as_the_command_does(tmp_path, capsys):
    """`tunelab compare --resume --overwrite` was refused by the command alone; compare(resume=True, overwrite=True)
    from Python went on and overwrote (opts.reuse: overwrite won), deleting the finished runs the caller asked to
    reuse. One rule now, in compare's own option checks, before the data is read or anything is written: each caller
    reads it in its own spelling."""
    from tunelab import compare
    from tunelab.config import TrainConfig
    from tunelab.errors import ConfigError

    out = tmp_path / "cmp"
    (out / "runs" / "head").mkdir(parents=True)
    kept = write(out / "runs" / "head" / "metrics.json", "{}")
    broken = write(tmp_path / "broken.parquet", b"not a parquet file")  # read only if the options pass
    with pytest.raises(ConfigError) as caught:
        compare(TrainConfig(model="minilm", data=str(broken)), ["head"], out=out, log=None, resume=True, overwrite=True)
    said = str(caught.value)
    assert said.startswith("resume=True reuses the finished runs in out= and overwrite=True trains every one again: give "
                           "one of them") and "--" not in said, said
    assert main(["compare", "--model", "minilm", "--data", str(broken), "--strategies", "head", "--out", str(out),
                 "--resume", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume reuses the finished runs in --out and --overwrite trains every one " \
           "again" in err, err
    assert kept.read_text() == "{}"


def test_evaluate_artifact_names_its_keywords_from_python(tmp_path):
    """evaluate_artifact(run, split="dev") and (seed=-1) said "--split 'dev' is not a split" and "--seed must be" to a
    Python caller who typed no flag (README: from Python a message names a setting as it is passed). Now the keyword
    from Python and the flag under `tunelab evaluate`."""
    from tunelab import evaluate_artifact
    from tunelab.errors import ConfigError, settings_as_flags

    with pytest.raises(ConfigError) as caught:
        evaluate_artifact(tmp_path / "run", split="dev", seed=-1)
    said = str(caught.value)
    assert "split='dev' is not a split" in said and "seed= must be in [0, 2^32), got -1" in said and "--" not in said, said
    with settings_as_flags(), pytest.raises(ConfigError) as caught:  # as `tunelab evaluate` calls it (test_cli: a run)
        evaluate_artifact(tmp_path / "run", split="dev", seed=-1)
    assert "--split 'dev' is not a split" in str(caught.value) and "--seed must be" in str(caught.value), caught.value


def test_an_unknown_setting_from_python_points_to_help_trainconfig():
    """train({"epoch": 1}) said "unknown option(s) epoch; see `tunelab train --help`" to a Python caller: the command's
    help, and no word of epochs. Now the near miss and help(TrainConfig) (which the README says lists every setting)
    from Python; the command's --config keeps its --help."""
    import tunelab
    from tunelab.errors import ConfigError, settings_as_flags

    with pytest.raises(ConfigError) as caught:
        tunelab.train({"model": "minilm", "epoch": 1})
    assert str(caught.value) == "train(config): unknown option(s) epoch (did you mean epochs?); see help(TrainConfig)"
    with settings_as_flags(), pytest.raises(ConfigError, match=r"epoch \(did you mean epochs\?\); see `tunelab train --help`$"):
        tunelab.train({"model": "minilm", "epoch": 1})


def test_recommend_and_estimate_refuse_counts_below_one_in_their_callers_words(capsys):
    """recommend(sample_size=0) ended in an IndexError, feature_examples=0 in scikit-learn's InvalidParameterError, and
    timed_steps=0 in an advice with no strategy; estimate(timed_steps=0) said "raise --warmup-steps / --steps" to a
    Python caller, and `tunelab estimate --warmup-steps 0` passed the command's check ("at least 0") to fail in
    estimate's. One check now (estimate.step_problems, config.counts_below_one), before the data is read: the keyword
    from Python, the flag from the command."""
    from tunelab import estimate, recommend
    from tunelab.errors import ConfigError

    for options, said in (({"sample_size": 0}, "sample_size= must be at least 1, got 0"),
                          ({"feature_examples": 0}, "feature_examples= must be at least 1, got 0"),
                          ({"timed_steps": 0}, "timed_steps= must be at least 1, got 0: pass e.g. 10, or leave it out "
                                               "for its default, 4")):
        with pytest.raises(ConfigError) as caught:
            recommend("minilm", 42, **options)  # refused before the data (42 is no data)
        assert str(caught.value).startswith(said), caught.value
    with pytest.raises(ConfigError) as caught:
        estimate({"model": "minilm"}, data=42, timed_steps=0)
    assert str(caught.value) == "timed_steps= must be at least 1, got 0: pass e.g. 10, or leave it out for its default, 5"
    assert main(["estimate", "--model", "minilm", "--strategy", "full", "--warmup-steps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tunelab: error: --warmup-steps must be at least 1, got 0: pass e.g. 1, or leave it out for its default, 3"


def test_gradient_checkpointing_on_a_model_without_it_is_one_line(tmp_path, capsys):
    """--gradient-checkpointing on an architecture transformers cannot checkpoint (CTRL): full fine-tuning ended in
    the Trainer's ValueError traceback, LoRA in a misleading "its forward pass failed on a probe input". Now one line,
    exit 2, before the output folder is made."""
    import torch
    from transformers import CTRLConfig, CTRLLMHeadModel

    from conftest import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    torch.manual_seed(0)
    model_dir = tmp_path / "ctrl"
    CTRLLMHeadModel(CTRLConfig(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=4, dff=64, n_positions=64,
                               pad_token_id=tokenizer.pad_token_id)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    capsys.readouterr()  # the saving's progress bars
    data = write(tmp_path / "d.csv", "text,label\n" + "".join(f"film {i} was {w},{w}\n" for i, w in enumerate(["good", "bad"] * 6)))
    for strategy in ("full", "lora"):
        out = tmp_path / f"o-{strategy}"
        code = main(["-q", "train", "--model", str(model_dir), "--data", str(data), "--strategy", strategy,
                     "--gradient-checkpointing", "--epochs", "1", "--no-forgetting", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "--gradient-checkpointing: CTRLForSequenceClassification does not support gradient checkpointing" in err
        assert not out.exists()


def test_a_setting_is_named_as_the_caller_spells_it(tiny_bert_dir, tmp_path, capsys):
    """Errors raised to a Python caller named the flags ("--max-length must be ...", "pass --overwrite") of a
    TrainConfig(max_length=...) they never typed: from Python a setting is named as its keyword (max_length=,
    overwrite=True), on the command line as its flag, by one mechanism (tunelab.errors.setting)."""
    from tunelab import TrainConfig, train
    from tunelab.errors import ConfigError, TunelabError

    used = tmp_path / "used"
    write(used / "notes.txt", "mine")
    config = TrainConfig(model=str(tiny_bert_dir), data=good(tmp_path), max_length=4, resume=True, overwrite=True)
    with pytest.raises(ConfigError) as caught:
        config.validate()
    said = str(caught.value)
    assert "max_length= must be at least 8, got 4: pass e.g. 64 or 256" in said, said
    assert "resume=True continues the run in out= and overwrite=True replaces it" in said and "--" not in said, said
    with pytest.raises(TunelabError) as caught:
        train(config.replace(max_length=None, resume=False, overwrite=False, out=str(used)))
    said = str(caught.value)
    assert "pass overwrite=True to replace tunelab's files there, resume=True to continue the run, or choose another " \
           "out=" in said and "--" not in said, said

    argv = ["-q", "train", "--model", str(tiny_bert_dir), "--data", good(tmp_path)]
    assert main([*argv, "--max-length", "4", "--resume", "--overwrite"]) == 2
    said = capsys.readouterr().err
    assert "--max-length must be at least 8, got 4" in said and "--resume continues the run in --out and --overwrite " \
           "replaces it" in said and "max_length=" not in said, said
    assert main([*argv, "--out", str(used)]) == 2
    said = capsys.readouterr().err
    assert "pass --overwrite to replace tunelab's files there, --resume to continue the run, or choose another --out" \
           in said and "=True" not in said, said
    with pytest.raises(ConfigError, match=r"^max_length= must be"):  # the command's spelling ended with it
        config.validate()


def test_compare_and_resume_messages_name_settings_as_the_caller_spells_them():
    """compare's option checks and the "other settings" lists of resume refusals named flags (--seeds, --halving,
    --tolerance, "--lr 0.001 → 0.0001") to a Python caller of compare(seeds=0, ...) who typed none: they now name
    the keyword from Python and the flag under the tunelab command (tunelab.errors.setting)."""
    from tunelab.compare.runner import CompareOptions, _changes, _problems, check_options
    from tunelab.config import TrainConfig
    from tunelab.errors import ConfigError, settings_as_flags
    from tunelab.models.targets import spec_problem
    from tunelab.strategies.base import merge_problem

    base = TrainConfig(model="minilm", data="x")
    opts = CompareOptions(halving=0.5, tolerance=5.0, budget_minutes=0, run_timeout_s=-1)
    changed = [("lr", 0.001, 0.0001), ("epochs", None, 2), ("cache", True, False)]

    def said() -> str:
        with pytest.raises(ConfigError) as caught:
            check_options(base, opts)
        return " ".join([*_problems(base, [], 0, [], {"full": 1e-5}, [1.0], -1.0), str(caught.value), _changes(changed),
                         merge_problem("head"), spec_problem(" "), *TrainConfig(report_to="tensorbored").problems()])

    python = said()
    with settings_as_flags():
        flags = said()
    for in_python, as_flag in [  # each message as a Python caller reads it, and as the tunelab command's user does
            ("strategies= is empty", "--strategies is empty"), ("seeds= must be at least 1", "--seeds must be at least 1"),
            ("data_fractions= is empty", "--data-fractions is empty"),
            ("lr_overrides= names full, which is not in strategies=", "--lr-overrides names full, which is not in --strategies"),
            ("tune_lr_epochs= must be", "--tune-lr-epochs must be"),
            ("halving= must be at least 1", "--halving must be at least 1"),
            ("budget_minutes= must be", "--budget-minutes must be"), ("tolerance=5 is a fraction", "--tolerance 5 is a fraction"),
            ("run_timeout_s= must be", "--run-timeout must be"),
            ("lr=0.001 → 0.0001, epochs=default → 2, cache=True → cache=False",  # a switch as it is set, not 'True'
             "--lr 0.001 → 0.0001, --epochs default → 2, --cache → --no-cache"),
            ("merge=True applies to", "--merge applies to"), ("drop merge=True", "drop --merge"),
            ("lora_target_modules= is empty", "--lora-target-modules is empty"),
            ("report_to='tensorbored' is not a tracker", "--report-to tensorbored is not a tracker")]:
        assert in_python in python, (in_python, python)
        assert as_flag in flags, (as_flag, flags)
    assert " --" not in python and not python.startswith("--"), python
    assert "=" not in flags.replace("full=1", ""), flags
