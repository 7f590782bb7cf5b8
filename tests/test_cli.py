"""The ``tunelab`` command, run in-process on tiny models: the files it writes and the numbers it prints."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from tunelab.cli.main import main
from tunelab.strategies import STRATEGIES

TEXTS = ["the film was really good and moving", "a dull , boring and painful story"]


def tunelab(*argv: str) -> tuple[int, str, str]:
    """Run ``tunelab ARGV`` in this process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["-q", *argv])
        except SystemExit as exc:  # argparse errors and --help
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def table_rows(text: str) -> dict[str, str]:
    """{measure: value} from the rich table ``tunelab train`` prints."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 4:
            rows[cells[1]] = cells[2]
    return rows


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")  # rich wraps tables at the terminal width


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory, toy_classification_data) -> Path:
    """The toy rows (80, labels neg / pos) as one CSV file, the way a user brings data."""
    data = toy_classification_data
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for split in data.splits().values():
            for row in split:
                writer.writerow([row["text"], data.label_names[row["label"]]])
    return path


def _train(*flags: str) -> tuple[str, Path]:
    code, out, err = tunelab("train", "--epochs", "1", "--batch-size", "8", "--no-cache", *flags)
    assert code == 0, err
    return out, Path(flags[flags.index("--out") + 1])


@pytest.fixture(scope="module")
def head_run(tiny_bert_dir, toy_csv, tmp_path_factory):
    """(printed output, out folder) of a head-only run with a transformers-format artifact."""
    out_dir = tmp_path_factory.mktemp("cli") / "head"
    return _train("--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategy", "head", "--out", str(out_dir))


@pytest.fixture(scope="module")
def lora_run(tiny_bert_dir, toy_csv, tmp_path_factory):
    """A LoRA run with --merge, started with a *relative* --model path from the model's parent folder."""
    out_dir = tmp_path_factory.mktemp("cli") / "lora"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_bert_dir.parent)
        return _train("--model", tiny_bert_dir.name, "--data", str(toy_csv), "--strategy", "lora", "--merge", "--out", str(out_dir))


def test_train_writes_a_complete_artifact(head_run):
    _, out = head_run
    model = out / "model"
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md", "tunelab.json"} <= {
        p.name for p in model.iterdir()
    }
    assert not (out / "checkpoints").exists()  # checkpoints are removed after a successful run
    config = json.loads((model / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    saved = yaml.safe_load((out / "run_config.yaml").read_text())
    assert saved["strategy"] == "head" and saved["task"] == "classification" and saved["out"] == str(out)
    record = json.loads((out / "metrics.json").read_text())
    assert record["run_info"]["status"] == "success"
    assert record["meta_info"]["label_names"] == ["neg", "pos"]
    assert record["meta_info"]["n_train"] + record["meta_info"]["n_validation"] + record["meta_info"]["n_test"] == 80
    assert record["artifact"]["format"] == "transformers"
    card = (model / "README.md").read_text()
    info = record["train_info"]
    assert f"{info['trainable_params']:,} of {info['total_params']:,}" in card
    assert f"accuracy {record['metrics']['test']['accuracy']:.4f}" in card


def test_train_prints_the_numbers_it_records(head_run):
    printed, out = head_run
    record = json.loads((out / "metrics.json").read_text())
    rows = table_rows(printed)
    info = record["train_info"]
    assert rows["trainable parameters"] == (
        f"{info['trainable_params']:,} of {info['total_params']:,} ({100 * info['trainable_share']:.2f} %)"
    )
    assert info["trainable_params"] == (32 * 32 + 32) + (32 * 2 + 2)  # BERT's pooler and the classifier
    for split in ("validation", "test"):
        for metric in ("accuracy", "f1_macro", "loss"):
            assert float(rows[f"{split} {metric}"]) == pytest.approx(record["metrics"][split][metric], abs=5e-5)
    assert f"model: {out / 'model'} (transformers); metrics: {out / 'metrics.json'}" in printed


def test_config_file_repeats_the_run(head_run, tmp_path):
    _, out = head_run
    _, again = _train("--config", str(out / "run_config.yaml"), "--out", str(tmp_path / "again"))
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (out, again))
    assert second["config"] | {"out": None} == first["config"] | {"out": None}
    for split in ("validation", "test"):
        for metric, value in first["metrics"][split].items():
            assert second["metrics"][split][metric] == pytest.approx(value, abs=1e-6)


def test_rerun_into_a_used_folder_asks_for_overwrite(head_run):
    _, out = head_run
    code, _, err = tunelab("train", "--config", str(out / "run_config.yaml"))
    assert code == 2
    assert err.count("\n") == 1 and "--overwrite" in err and str(out) in err


def test_a_used_folder_holding_a_run_of_other_data_says_so_rather_than_offer_to_resume(head_run, toy_csv, tmp_path):
    """Two files of one name (a/train.csv, b/train.csv) share a default run folder: the second run was refused it with
    '--resume to continue the run', and --resume then said 'pass --overwrite to train it again', of a run of other
    data. It now names the data the folder's run trained on; the same data still gets the offer to resume."""
    _, out = head_run
    other = tmp_path / "elsewhere" / toy_csv.name
    other.parent.mkdir()
    other.write_bytes(toy_csv.read_bytes())
    code, _, err = tunelab("train", "--config", str(out / "run_config.yaml"), "--data", str(other))
    assert code == 2 and err.count("\n") == 1, err
    assert f"output folder {out} holds a run of other data ({toy_csv}): choose another --out, or pass --overwrite" in err
    code, _, err = tunelab("train", "--config", str(out / "run_config.yaml"), "--data", str(toy_csv))
    assert code == 2 and "--resume to continue the run" in err, err


def test_list_commands_print_the_builtins():
    from tunelab.data import list_datasets

    code, out, _ = tunelab("models")
    assert code == 0 and "minilm" in out and "smollm2" in out
    code, out, _ = tunelab("strategies")
    assert code == 0
    for name, cls in STRATEGIES.items():
        assert name in out and f"{cls.default_lr:g}" in out
    code, out, _ = tunelab("datasets")
    assert code == 0
    for row in list_datasets():
        assert row["name"] in out


def test_predict_prints_labels_with_probabilities(head_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, out = head_run
    code, printed, err = tunelab("predict", str(out), *TEXTS)
    assert code == 0, err
    lines = printed.strip().splitlines()
    assert len(lines) == len(TEXTS)
    # the same model, loaded without tunelab
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    with torch.no_grad():
        probs = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1)
    for line, text, row in zip(lines, TEXTS, probs):
        label, shown, echoed = line.split("\t")
        assert echoed == text
        parsed = dict(part.rsplit(" ", 1) for part in shown.split(", "))
        assert set(parsed) == {"neg", "pos"}
        assert label == max(parsed, key=lambda k: float(parsed[k])) == ["neg", "pos"][int(row.argmax())]
        for name, p in zip(["neg", "pos"], row):
            assert float(parsed[name]) == pytest.approx(float(p), abs=6e-4)


def test_predict_takes_options_between_texts_shows_the_top_k_and_writes_json(head_run, caplog, tmp_path):
    _, out = head_run
    code, printed, err = tunelab("predict", str(out), TEXTS[0], "--top-k", "1", TEXTS[1])
    assert code == 0, err
    lines = printed.strip().splitlines()
    assert len(lines) == 2 and all(line.split("\t")[1].endswith("(+1 more)") for line in lines)
    assert all(line.split("\t")[0] == line.split("\t")[1].split(" ")[0] for line in lines)  # the top class shown
    code, printed, err = tunelab("predict", str(out), "--json", *TEXTS)
    rows = [json.loads(line) for line in printed.strip().splitlines()]
    assert code == 0 and [r["text"] for r in rows] == list(TEXTS)
    assert all(set(r["probabilities"]) == {"neg", "pos"} and sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
               for r in rows)
    import numpy as np

    from tunelab import predict

    assert [r["text"] for r in predict(out, np.array(TEXTS))] == list(TEXTS)  # NumPy's str_ given: str back
    assert all(type(r["text"]) is str for r in predict(out, np.array(TEXTS)))
    code, _, err = tunelab("predict", str(out), "--top-k", "-1", TEXTS[0])
    assert code == 2 and err.strip().startswith("tunelab: error: --top-k -1")
    with caplog.at_level("WARNING", logger="tunelab"):
        code, _, err = tunelab("predict", str(out), "--max-new-tokens", "5", TEXTS[0])  # a generation flag on a classifier
    assert code == 0 and f"--max-new-tokens ignored: {out} is a classifier" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunelab"):  # a chat model's flags on a classifier: said, not silent
        code, _, err = tunelab("predict", str(out), "--system", "be brief", "--raw", TEXTS[0])
    assert code == 0 and f"--raw, --system ignored: {out} is a classifier" in caplog.text
    (tmp_path / "empty.txt").write_text("\n \n")
    code, _, err = tunelab("predict", str(out), "--file", str(tmp_path / "empty.txt"))
    assert code == 2 and "holds no input (it is empty or holds only blank lines)" in err, err
    code, _, err = tunelab("predict", str(out), TEXTS[0], "  ")
    assert code == 2 and err.strip() == ("tunelab: error: text 2 of the arguments is empty: give each text to predict "
                                         "as a non-empty argument")


def test_predict_reads_a_tables_text_column_and_a_text_files_lines(head_run, tmp_path):
    """--file with a CSV or JSON lines predicts each row's text, not each line (the header and the labels were
    predicted as texts); a .txt file is one input a line."""
    _, out = head_run
    (tmp_path / "t.csv").write_text("review,label\n" + "".join(f'"{t}, indeed",pos\n' for t in TEXTS))
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t, "label": "neg"}) + "\n" for t in TEXTS))
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n\n")
    for name, want in (("t.csv", [f"{t}, indeed" for t in TEXTS]), ("t.jsonl", list(TEXTS)), ("t.txt", list(TEXTS))):
        code, printed, err = tunelab("predict", str(out), "--file", str(tmp_path / name))
        assert code == 0, err
        assert [line.split("\t")[2] for line in printed.strip().splitlines()] == want, name
    # a prompts file saved by Notepad / Excel (a UTF-8 BOM, Windows' line ends) or as UTF-16: the BOM was glued to the
    # first input ("\ufeffa gripping ..." predicted), UTF-16 refused; read as training reads a text file
    (tmp_path / "bom.txt").write_bytes(("\ufeff" + "\r\n".join(TEXTS) + "\r\n").encode("utf-8"))
    (tmp_path / "u16.txt").write_bytes(("\n".join(TEXTS)).encode("utf-16"))
    for name in ("bom.txt", "u16.txt"):
        code, printed, err = tunelab("predict", str(out), "--file", str(tmp_path / name), "--json")
        assert code == 0, err
        assert [json.loads(line)["text"] for line in printed.strip().splitlines()] == list(TEXTS), name
    # a column of conversations (a chat JSONL's messages) holds no texts: refused, not predicted as Python reprs
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": t}]}) + "\n" for t in TEXTS))
    code, printed, err = tunelab("predict", str(out), "--file", str(chats), "--text-column", "messages")
    assert code == 2 and not printed and err.count("\n") == 1, err
    assert "line 1, column 'messages' holds a list, not text" in err and "--text-column" in err, err


def test_predict_reads_the_column_the_model_trained_on_and_a_pairs_two_columns(tiny_bert_dir, toy_csv, tmp_path):
    """A model trained on ``--text-column complaint_body`` predicts a table's column of that name (it looked for ``text`` and asked
    for a --text-column that predict did not have); one trained on a text pair reads both of a table's columns, as
    the tab-joined pair the arguments take; --text-column names others."""
    rows = list(csv.reader(toy_csv.open(encoding="utf-8")))[1:]
    body = tmp_path / "tickets.csv"
    body.write_text("id,complaint_body,label\n" + "".join(f'{i},"{t}",{y}\n' for i, (t, y) in enumerate(rows)))
    _, named = _train("--model", str(tiny_bert_dir), "--data", str(body), "--text-column", "complaint_body", "--strategy", "head",
                      "--out", str(tmp_path / "named"))
    (tmp_path / "new.csv").write_text("id,complaint_body\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(TEXTS)))
    code, printed, err = tunelab("predict", str(named), "--file", str(tmp_path / "new.csv"))
    assert code == 0, err
    assert [line.split("\t")[2] for line in printed.strip().splitlines()] == TEXTS
    (tmp_path / "other.csv").write_text("id,words\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(TEXTS)))
    code, printed, err = tunelab("predict", str(named), "--file", str(tmp_path / "other.csv"), "--text-column", "words")
    assert code == 0 and [line.split("\t")[2] for line in printed.strip().splitlines()] == TEXTS, err
    code, _, err = tunelab("predict", str(named), "--file", str(tmp_path / "other.csv"))
    assert code == 2 and err.count("\n") == 1 and "no text column 'complaint_body'" in err and "--text-column" in err, err

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("premise,hypothesis,label\n" + "".join(f'"{t}","{t[::-1]}",{y}\n' for t, y in rows))
    _, paired = _train("--model", str(tiny_bert_dir), "--data", str(pairs), "--text-column", "premise,hypothesis",
                       "--strategy", "head", "--out", str(tmp_path / "paired"))
    (tmp_path / "new-pairs.csv").write_text("premise,hypothesis\n" + "".join(f'"{t}","{t[::-1]}"\n' for t in TEXTS))
    code, from_table, err = tunelab("predict", str(paired), "--file", str(tmp_path / "new-pairs.csv"), "--json")
    assert code == 0, err
    code, from_args, err = tunelab("predict", str(paired), *(f"{t}\t{t[::-1]}" for t in TEXTS), "--json")
    assert code == 0 and from_table == from_args and len(from_table.strip().splitlines()) == 2, err


def test_evaluate_prints_the_accuracy_training_measured(head_run, toy_csv, tmp_path, caplog):
    _, out = head_run
    with caplog.at_level("WARNING", logger="tunelab"):
        code, printed, err = tunelab("evaluate", str(out), "--data", str(toy_csv))
    assert code == 0, err
    assert "is not the data this model trained on" not in caplog.text
    other = tmp_path / "other.csv"  # a file the model did not train on: its test split is a fifth of it, and it says so
    other.write_bytes(toy_csv.read_bytes())
    with caplog.at_level("WARNING", logger="tunelab"):
        assert tunelab("evaluate", str(out), "--data", str(other))[0] == 0
    assert f"{other} is not the data this model trained on ({toy_csv.resolve()}): its test split" in caplog.text
    assert "--split all scores every row" in caplog.text
    values = dict(line.split("\t") for line in printed.strip().splitlines())
    record = json.loads((out / "metrics.json").read_text())
    assert int(values["examples"]) == record["meta_info"]["n_test"]
    assert float(values["accuracy"]) == pytest.approx(record["metrics"]["test"]["accuracy"], abs=1e-4)
    code, printed, err = tunelab("evaluate", str(out), "--data", str(toy_csv), "--json")
    assert code == 0, err
    scored = json.loads(printed)
    assert scored["split"] == "test" and scored["accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert float(values["loss"]) == pytest.approx(record["metrics"]["test"]["loss"], abs=1e-3)


def test_evaluate_says_it_scores_the_first_examples_as_a_run_with_max_eval_samples_did(tiny_bert_dir, toy_csv, tmp_path,
                                                                                        caplog):
    """A run trained with --max-eval-samples 5 is evaluated on the first 5 test examples, as it scored them; evaluate
    printed "examples 5" with no word of the rest of the split."""
    out = tmp_path / "few"
    _train("--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategy", "head", "--max-eval-samples", "5",
           "--out", str(out))
    with caplog.at_level("WARNING", logger="tunelab"):
        code, printed, err = tunelab("evaluate", str(out), "--data", str(toy_csv))
    assert code == 0, err
    assert dict(line.split("\t") for line in printed.strip().splitlines())["examples"] == "5"
    assert "scoring the first 5 of the " in caplog.text and "(it trained with --max-eval-samples 5)" in caplog.text


def test_evaluate_split_all_scores_every_row_of_a_small_held_out_file(head_run, tmp_path):
    """A held-out file too small to split (2 rows) is scored whole with --split all, none of the split's requirements
    asked of it; without it, the file is split as training split its data, which 2 rows cannot be."""
    _, out = head_run
    (tmp_path / "held.csv").write_text("text,label\ngood film,pos\nawful,neg\n")
    code, printed, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "held.csv"), "--split", "all")
    assert code == 0, err
    values = dict(line.split("\t") for line in printed.strip().splitlines())
    assert values["split"] == "all" and int(values["examples"]) == 2 and 0 <= float(values["accuracy"]) <= 1
    code, _, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "held.csv"))
    assert code == 2 and "only 2 examples" in err


def test_evaluate_refuses_classes_the_model_does_not_know_in_one_short_line(head_run, tmp_path):
    _, out = head_run
    rows = "".join(f"text number {i},intent_{i % 20:02d}\n" for i in range(200))
    (tmp_path / "other.csv").write_text("text,label\n" + rows)
    code, _, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "other.csv"))
    assert code == 2 and err.count("\n") == 1
    assert "label(s) intent_00, intent_01" in err and "intent_07 and 12 more were not seen in training" in err
    assert "(the model knows neg, pos); evaluate on data with the model's classes" in err


def test_evaluate_says_when_a_label_differs_from_the_model_s_only_in_case(head_run, tmp_path):
    _, out = head_run
    (tmp_path / "held.csv").write_text("text,label\ngood film,Pos\nawful,neg\n")
    code, _, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "held.csv"), "--split", "all")
    assert code == 2 and err.count("\n") == 1
    assert "label(s) Pos were not seen in training" in err
    assert "the model writes 'Pos' as 'pos' (labels are classes as written): write them alike" in err


def test_evaluate_data_errors_do_not_suggest_another_task(head_run, tmp_path):
    """The model has its task: a missing label column or plain text in `evaluate` does not suggest --task causal-lm,
    which evaluate has not and which the model could not take; `train` still suggests it."""
    _, out = head_run
    (tmp_path / "nolabel.csv").write_text("text,lab\n" + "".join(f"text number {i},pos\n" for i in range(40)))
    (tmp_path / "plain.txt").write_text("some text\n\nmore text\n")
    for data in ("nolabel.csv", "plain.txt"):
        code, _, err = tunelab("evaluate", str(out), "--data", str(tmp_path / data))
        assert code == 2 and err.count("\n") == 1 and "--task" not in err, err
    code, _, err = tunelab("train", "--data", str(tmp_path / "nolabel.csv"), "--strategy", "head")
    assert code == 2 and "or pass --task causal-lm" in err
    # a file too small for the split training made of it: score it whole (training's remedies do not apply)
    (tmp_path / "three.csv").write_text("text,label\na good one,pos\na bad one,neg\nfine,pos\n")
    code, _, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "three.csv"))
    assert code == 2 and err.count("\n") == 1 and "pass --split all" in err and "merge it" not in err, err


def test_evaluate_refuses_a_seed_out_of_range_in_one_line(head_run, toy_csv):
    """The split's seed goes to scikit-learn, which would raise its own error in a traceback."""
    _, out = head_run
    code, _, err = tunelab("evaluate", str(out), "--data", str(toy_csv), "--seed", "-3")
    assert code == 2 and err.count("\n") == 1 and "--seed must be in [0, 2^32), got -3" in err, err


def test_a_damaged_weights_file_is_one_line_naming_the_model(tiny_bert_dir, toy_csv, tmp_path):
    """A .safetensors file cut short (a download that stopped) is a user's problem: one line, exit 2, for train and
    for recommend, whose measurement of the domain loads the weights itself."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3000])
    for argv in (("train", "--strategy", "head", "--out", str(tmp_path / "o")), ("recommend",)):
        code, _, err = tunelab(*argv, "--model", str(broken), "--data", str(toy_csv), "--max-train-samples", "40")
        assert code == 2 and err.count("\n") == 1, err
        assert f"cannot load '{broken}'" in err and "a weights file is damaged" in err and "download the model again" in err
    assert not (tmp_path / "o").exists()
    # a comparison checks the weights before anything is written (every run failed on them, exit 1, cause not said)
    compare = ("compare", "--data", str(toy_csv), "--strategies", "head,bitfit", "--out", str(tmp_path / "c"),
               "--no-pre-recommendation")
    code, _, err = tunelab(*compare, "--model", str(broken))
    assert code == 2 and err.count("\n") == 1 and "its weights file model.safetensors is damaged" in err, err
    weights.unlink()
    code, _, err = tunelab(*compare, "--model", str(broken))
    assert code == 2 and err.count("\n") == 1 and "the folder holds no weights" in err and "save_pretrained" in err, err
    assert not (tmp_path / "c").exists()


def test_evaluate_with_integer_ids_against_named_classes_says_how_to_name_them(head_run, tmp_path):
    _, out = head_run
    (tmp_path / "ids.csv").write_text("text,label\n" + "".join(f"text number {i},{i % 2}\n" for i in range(40)))
    code, _, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "ids.csv"))
    assert code == 2 and err.count("\n") == 1
    assert "label(s) 0, 1 were not seen" in err and "their names in a 'label_text' column" in err
    (tmp_path / "named.csv").write_text("text,label,label_text\n"
                                        + "".join(f"text number {i},{i % 2},{['neg', 'pos'][i % 2]}\n" for i in range(40)))
    code, printed, err = tunelab("evaluate", str(out), "--data", str(tmp_path / "named.csv"))
    assert code == 0, err
    assert "accuracy" in printed


def test_lora_writes_an_adapter_and_a_merged_model_with_the_same_logits(lora_run, tiny_bert_dir, monkeypatch, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, out = lora_run
    model_dir = out / "model"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in model_dir.iterdir()}
    adapter = json.loads((model_dir / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == tiny_bert_dir.resolve()  # absolute, though given relative
    info = json.loads((model_dir / "tunelab.json").read_text())
    assert Path(info["base_model"]) == tiny_bert_dir.resolve()  # tunelab's record too, whatever the working directory
    card = (model_dir / "README.md").read_text()
    assert f"`{tiny_bert_dir.name}` (the folder `{tiny_bert_dir.resolve()}`)" in card and "built-in" not in card
    merged_dir = model_dir / "merged"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in merged_dir.iterdir()}

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    assert merged.config.id2label == {0: "neg", 1: "pos"}
    base = AutoModelForSequenceClassification.from_pretrained(adapter["base_model_name_or_path"], num_labels=2)
    with_adapter = PeftModel.from_pretrained(base, model_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**enc).logits, with_adapter(**enc).logits, rtol=1e-5, atol=1e-5)

    monkeypatch.chdir(tmp_path)  # predict works from anywhere, not only where training ran
    code, printed, err = tunelab("predict", str(model_dir), TEXTS[0])
    assert code == 0, err
    label = printed.split("\t")[0]
    assert label == ["neg", "pos"][int(with_adapter(**tokenizer(TEXTS[:1], return_tensors="pt")).logits.argmax())]


def test_user_errors_are_one_line_and_exit_2(tiny_bert_dir, toy_csv, tmp_path):
    code, _, err = tunelab("train", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategy", "nope", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "--strategy 'nope' is unknown" in err and "lora" in err
    code, _, err = tunelab("train", "--epochs", "many")
    assert code == 2 and err.startswith("tunelab: error:") and "--epochs" in err
    code, _, err = tunelab("predict", str(tmp_path / "missing"), "text")
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "o").exists()


def test_help_of_trainconfig_says_every_setting_as_train_help_does():
    """A notebook's ``help(TrainConfig)`` / ``TrainConfig?`` showed one line and the constructor's signature: what each
    setting means was in the source only (attribute docstrings), where ``tunelab train --help`` read it. Now the
    class's docstring lists every setting with its type, default and those words, from the same reading."""
    import pydoc
    from dataclasses import fields

    from tunelab.config import TrainConfig, field_docs

    text = " ".join(line.removeprefix(" |  ") for line in pydoc.render_doc(TrainConfig, renderer=pydoc.plaintext).splitlines())
    text = " ".join(text.split())
    for f in fields(TrainConfig):
        assert f"{f.name}: {f.type} = " in text, f.name
    assert "label_column: str = 'label' Column of the class labels (classification)." in text
    assert field_docs(TrainConfig)["label_column"] == "Column of the class labels (classification)."


def test_list_commands_work_in_pipes_and_as_json():
    """Piped, every name is whole and sizes are numbers in columns; --json is the same rows for scripts."""
    from tunelab.data import list_datasets

    code, out, _ = tunelab("datasets")
    assert code == 0
    header, *lines = out.strip().splitlines()
    assert header.split()[:6] == ["name", "task", "train", "validation", "test", "total"]
    by_name = {line.split()[0]: line.split() for line in lines}
    for row in list_datasets():
        if row["rows"]:
            assert by_name[row["name"]][2:6] == [str(row["rows"][s]) for s in ("train", "validation", "test", "total")]
    code, out, _ = tunelab("datasets", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == [r["name"] for r in list_datasets()]
    code, out, _ = tunelab("strategies", "--json")
    assert code == 0 and {r["name"] for r in json.loads(out)} == set(STRATEGIES)
    from tunelab.strategies import default_comparison

    assert [r["name"] for r in json.loads(out) if r["compared"] is True] == default_comparison()  # compare's default set
    code, out, _ = tunelab("models", "--json")
    assert code == 0 and {"minilm", "smollm2"} <= {r["name"] for r in json.loads(out)}


def test_list_tables_in_a_narrow_terminal_never_cut_names(monkeypatch):
    from tunelab.cli.listing import print_list

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "80")
    rows = [{"name": "sentence-transformers-all-minilm", "description": "word " * 40}, {"name": "rotten-tomatoes", "description": "x"}]
    screen = Terminal()
    print_list(rows, ("name", "description"), title="t", stream=screen)
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())  # the terminal's colour codes
    assert "┃" in text  # a table
    assert "sentence-transformers-all-minilm" in text and "rotten-tomatoes" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    monkeypatch.setenv("COLUMNS", "40")  # too narrow for a table: plain text, names still whole
    screen = Terminal()
    print_list(rows, ("name", "description"), title="t", stream=screen)
    assert "┃" not in screen.getvalue() and screen.getvalue().splitlines()[1].startswith("sentence-transformers-all-minilm ")


def test_a_log_gets_the_comparison_table_unfolded(capsys):
    """Printed to a log file or a pipe, the comparison's table keeps its natural width (folded to 160 columns, a
    13-column table split its headers mid-word in every log: "Validatio" / "n") and a reason stays one line."""
    from rich.table import Table

    from tunelab.cli.listing import output_console
    from tunelab.report.tables import RESULTS_HEADERS

    headers = [h.format(metric="accuracy", level="95 %") for h in RESULTS_HEADERS]
    table = Table(title="tunelab comparison")
    for header in headers:
        table.add_column(header, justify="right")
    table.add_row(*[f"0.780 [0.743, 0.817] {i}" for i in range(len(headers))])
    console = output_console()  # capsys: not a terminal
    console.print(table)
    reason = "a reason " * 40
    console.print(f"  - {reason}", highlight=False)
    lines = capsys.readouterr().out.splitlines()
    header_line = next(line for line in lines if "Strategy" in line)
    assert all(h in header_line for h in headers), header_line
    assert any("0.780 [0.743, 0.817] 3" in line for line in lines)
    assert f"  - {reason}".rstrip() in [line.rstrip() for line in lines]


@pytest.mark.parametrize("command", [["predict", "some/folder", "--text", "a text"], ["models", "--bogus"],
                                     ["compare", "--data", "rotten-tomatoes", "--budget", "5", "--typo-flag"],
                                     ["compare", "--lr", "1e-3"], ["compare", "--data-fraction", "0.5"]])
def test_a_flag_the_command_does_not_know_points_to_that_commands_help(command, capsys):
    """Also a prefix of a flag it knows: ``compare --lr 1e-3`` was taken for --lr-overrides (and refused under that
    name), ``--data-fraction 0.5`` for --data-fractions in silence, ``predict --text`` for --text-column."""
    with pytest.raises(SystemExit) as exc:
        main(command)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.count("\n") == 0
    assert f"see `tunelab {command[0]} --help`" in err and "unrecognized arguments" in err


def test_quiet_is_taken_after_any_command_as_before_it(monkeypatch):
    from tunelab.cli.main import build_parser

    parser = build_parser()
    for argv in (["-q", "models"], ["models", "-q"], ["compare", "--data", "rotten-tomatoes", "-q"], ["recommend", "-q"]):
        assert parser.parse_args(argv).quiet is True, argv
    assert parser.parse_args(["models"]).quiet is False


def test_ctrl_c_during_a_comparison_says_how_to_resume_it(tiny_bert_dir, toy_csv, tmp_path, monkeypatch):
    import tunelab.cli.compare as cli_compare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_compare, "compare", interrupted)
    out = tmp_path / "cmp"
    code, _, err = tunelab("compare", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--out", str(out), "--overwrite")
    assert code == 130
    lines = [line for line in err.splitlines() if line.startswith("tunelab:")]
    assert len(lines) == 1 and lines[0].startswith(f"tunelab: interrupted: the comparison's finished runs are kept in {out}")
    assert lines[0].endswith(f"Resume with: tunelab -q compare --model {tiny_bert_dir} --data {toy_csv} --out {out} --resume")


def test_an_option_the_strategy_does_not_read_is_said_to_be_ignored(head_run, tiny_bert_dir, toy_csv, tmp_path, caplog):
    from tunelab.config import TrainConfig
    from tunelab.strategies.base import unused_options

    assert unused_options(TrainConfig(strategy="head", use_dora=True, layers=3)) == ["layers=", "use_dora="]
    assert unused_options(TrainConfig(strategy="lora", use_dora=True, lora_r=4)) == []
    # an --extra key: tunelab's own (cache_dtype) is read; another, with a built-in that reads none, is ignored
    from tunelab.run.cache import EXTRA_READ

    assert unused_options(TrainConfig(strategy="lora", extra={"rank": 64, "cache_dtype": "float32"}),
                          read_elsewhere=EXTRA_READ) == ["extra['rank']"]
    from tunelab.strategies import STRATEGIES

    class ReadsRank(STRATEGIES["lora"]):  # a subclass of a built-in declares nothing: it may read keys of its own
        name = "reads-rank"

    STRATEGIES["reads-rank"] = ReadsRank
    try:
        assert unused_options(TrainConfig(strategy="reads-rank", extra={"rank": 64})) == []
    finally:
        del STRATEGIES["reads-rank"]
    with caplog.at_level("WARNING", logger="tunelab"):
        _train("--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategy", "head", "--use-dora",
               "--out", str(tmp_path / "o"))
    assert "--use-dora does not apply to head, which does not read it: ignored" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunelab"):  # a bad value of an ignored option: the error alone, not both
        code, _, err = tunelab("train", "--model", str(tiny_bert_dir), "--data", str(toy_csv), "--strategy", "head",
                               "--lora-r", "0", "--out", str(tmp_path / "o2"))
    assert code == 2 and "--lora-r" in err and "ignored" not in caplog.text, (err, caplog.text)


def test_warnings_are_labelled_by_who_gave_them():
    """tunelab's own warnings read ``tunelab: warning:``; a library's (matplotlib's font fallback in the report) go
    under its own name, not tunelab's."""
    import logging

    from tunelab.cli.main import _ConsoleFormat

    def said(name: str) -> str:
        return _ConsoleFormat().format(logging.LogRecord(name, logging.WARNING, __file__, 1, "text %s", ("x",), None))

    assert said("tunelab") == said("tunelab.data.load") == "tunelab: warning: text x"
    assert said("matplotlib.font_manager") == "matplotlib: warning: text x"


def test_predict_refuses_no_tokens_to_generate_in_one_line(head_run, capsys):
    from tunelab.cli.main import main

    for value in ("0", "-3"):
        assert main(["predict", str(head_run[1] / "model"), "some text", "--max-new-tokens", value]) == 2
        err = capsys.readouterr().err
        assert f"--max-new-tokens {value}: give the number of tokens to generate" in err and "Traceback" not in err


@pytest.mark.parametrize(("flag", "value", "said"), [
    ("--num-examples", "-5", "--num-examples must be at least 1, got -5: pass e.g. 500, or leave it out for 1000"),
    ("--num-examples", "0", "--num-examples must be at least 1, got 0: pass e.g. 500, or leave it out for 1000"),
    ("--steps", "0", "--steps must be at least 1, got 0: pass e.g. 10, or leave it out for its default, 5")])
def test_estimate_refuses_counts_below_one_in_one_line(flag, value, said):
    """--num-examples -5 surfaced an IndexError, and 0 silently meant 1,000; the refusal now says what to pass."""
    code, _, err = tunelab("estimate", "--model", "minilm", "--strategy", "full", flag, value)
    assert code == 2 and err.strip() == f"tunelab: error: {said}"


def test_fraction_flags_are_said_ignored_where_the_data_brings_that_split(tmp_path, monkeypatch, caplog):
    """--validation-fraction / --test-fraction cut nothing where the data brings that split (a 'split' column, a
    folder's validation/test files), and a user who typed them was not told: one warning line names each typed flag
    whose split the data has; a flag not typed, or data without that split, says nothing."""
    import tunelab.run.training as training
    from tunelab.run import ranks

    monkeypatch.setattr(training, "train", lambda config, progress=True: {})  # what train does is not the point
    monkeypatch.setattr(ranks, "is_main", lambda: False)  # (and nothing to print)
    lines = [f"review {i} is {'fine' if i % 2 else 'poor'},{'pos' if i % 2 else 'neg'}" for i in range(30)]
    split_csv = tmp_path / "split.csv"
    split_csv.write_text("text,label,split\n" + "".join(
        f"{line},{'train' if i < 20 else 'validation' if i < 25 else 'test'}\n" for i, line in enumerate(lines)))
    plain_csv = tmp_path / "plain.csv"
    plain_csv.write_text("text,label\n" + "".join(f"{line}\n" for line in lines))
    folder = tmp_path / "folder"  # train and validation files: test is carved from train, by --test-fraction
    folder.mkdir()
    (folder / "train.csv").write_text("text,label\n" + "".join(f"{line}\n" for line in lines[:24]))
    (folder / "validation.csv").write_text("text,label\n" + "".join(f"{line}\n" for line in lines[24:]))

    def warned(data, *flags: str) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="tunelab"):
            code = main(["-q", "train", "--data", str(data), "--model", "minilm", "--strategy", "head", *flags])
        assert code == 0
        return [r.getMessage() for r in caplog.records if "fraction" in r.getMessage()]

    assert warned(split_csv, "--validation-fraction", "0.3") == [
        f"--validation-fraction 0.3 ignored: {split_csv} brings its own validation split (a fraction cuts only data "
        "without that split)"]
    assert warned(split_csv, "--validation-fraction", "0.3", "--test-fraction", "0.25") == [
        f"--validation-fraction 0.3 and --test-fraction 0.25 ignored: {split_csv} brings its own validation and test "
        "splits (a fraction cuts only data without that split)"]
    assert warned(folder, "--validation-fraction", "0.3", "--test-fraction", "0.25") == [
        f"--validation-fraction 0.3 ignored: {folder} brings its own validation split (a fraction cuts only data "
        "without that split)"]
    assert warned(split_csv) == []
    assert warned(plain_csv, "--validation-fraction", "0.3") == []
    # a competition's unlabelled test.csv is left out and test carved from train: --test-fraction does cut it
    (folder / "test.csv").write_text("id,text\n" + "".join(f"{i},{line.split(',')[0]}\n" for i, line in enumerate(lines[:6])))
    assert warned(folder, "--test-fraction", "0.25") == []


def test_estimate_with_missing_data_says_only_the_data_error(tmp_path, capsys):
    """``estimate --data missing_folder`` printed "timing 5 training steps ..." before the data's error line: the
    data is read first, and the timing is announced only once it has loaded."""
    code = main(["estimate", "--data", str(tmp_path / "missing_folder"), "--model", "minilm", "--strategy", "head"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("tunelab: error:") and "missing_folder" in err


def test_recommend_refuses_strategies_the_task_cannot_take_and_an_empty_list_as_compare_does():
    """--strategies head for a causal LM said "no strategy could be estimated on this machine", and "" meant all."""
    code, _, err = tunelab("recommend", "--model", "smollm2", "--data", "rotten-tomatoes", "--task", "causal-lm", "--strategies", "head")
    assert code == 2 and err.strip().startswith("tunelab: error: --strategies: head cannot train a causal-lm task; drop it, "
                                                "e.g. --strategies ")
    code, _, err = tunelab("recommend", "--model", "minilm", "--data", "rotten-tomatoes", "--strategies", "")
    assert code == 2 and err.strip().startswith("tunelab: error: --strategies is empty")


def test_the_per_size_table_names_full_fine_tuning_only_when_it_ran(tmp_path, capsys):
    """--data-fractions with head and lora only: the console table was titled 'full fine-tuning vs the best
    frozen/PEFT strategy', with a 'full' and a 'full wins' column of dashes."""
    from tunelab.cli.compare import print_result
    from tunelab.compare.runner import CompareResult

    rows = [{"data_fraction": f, "n_train": n, "metric": "accuracy", "split": "validation", "best_strategy": "lora",
             "best_mean": 0.7, "full_mean": None, "best_frozen_or_peft": "lora", "best_frozen_or_peft_mean": 0.7,
             "full_beats": None, "crossover_n_train": None} for f, n in ((0.5, 40), (1.0, 80))]
    print_result(CompareResult(out=tmp_path, results=[], recommendation={}, report={}, crossover=rows))
    said = capsys.readouterr().out
    assert "validation, by training-set size" in said and "full fine-tuning" not in said and "full wins" not in said
    with_full = [{**row, "full_mean": 0.6, "full_beats": False} for row in rows]
    print_result(CompareResult(out=tmp_path, results=[], recommendation={}, report={}, crossover=with_full))
    said = capsys.readouterr().out
    assert "full fine-tuning vs the best frozen/PEFT strategy" in said and "full wins" in said


def test_every_flag_of_every_command_says_what_it_does():
    """``tunelab train --help`` listed --seed, --batch-size, --weight-decay, --lora-r and ten more flags with only
    their default ("--seed SEED  (default: 42)"): every flag now says what it sets."""
    import argparse

    from tunelab.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    bare = []
    for name, sub in commands.items():
        for action in sub._actions:
            said = re.sub(r"\s*\(default: [^)]*\)\s*$", "", action.help or "").strip()
            if not isinstance(action, argparse._SubParsersAction) and action.help is not argparse.SUPPRESS and not said:
                bare.append(f"{name} {(action.option_strings or [action.dest])[-1]}")
    assert not bare, bare


@pytest.mark.parametrize("command", ["recommend", "estimate"])
def test_recommend_and_estimate_offer_no_screening_flag(command, capsys):
    """``tunelab estimate --screening`` was taken (a planned comparison's mark for its rounds before the last, which
    neither command runs) and only changed the key its timed steps were stored under."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--screening"])
    assert exc.value.code == 2 and "--screening" in capsys.readouterr().err


def test_a_model_the_hub_cannot_reach_is_one_line(tmp_path, monkeypatch, capfd):
    """A hub id that could not be looked up (a typo, no connection) printed each of the hub's retries twice, raw and
    as 'huggingface_hub: warning: ...', above the one line that says what failed and what to do."""
    import logging

    import transformers

    def unreachable(name, **kwargs):
        logging.getLogger("huggingface_hub.utils._http").warning(
            f"'[Errno -2] Name or service not known' thrown while requesting HEAD https://huggingface.co/{name}")
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load the files of {name}")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", unreachable)
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20)))
    code = main(["-q", "train", "--model", "no-such-model", "--data", str(data), "--out", str(tmp_path / "out")])
    err = capfd.readouterr().err
    assert code == 2
    assert "thrown while requesting" not in err
    assert err.strip().splitlines() == [next(line for line in err.splitlines() if line.startswith("tunelab: error:"))]
    assert "cannot load a tokenizer from 'no-such-model'" in err


def test_a_slow_runs_throughput_is_not_printed_as_zero(capsys):
    """A run of 24 conversations on a loaded machine trained at 0.034 samples/s; train's table printed "0.0 | 2", a rate
    of nothing. Rates keep their significant digits: "0.034 | 2.2"."""
    from tunelab.cli.main import print_record

    record = {"run_info": {"strategy": "lora"}, "meta_info": {"model": "smollm2", "data": "chat-qa"},
              "metrics": {"validation": {"loss": 2.3}},
              "train_info": {"trainable_params": 10, "total_params": 100, "trainable_share": 0.1, "memory_kind": "rss",
                             "peak_memory_mb": 1733.0, "train_time_s": 705.8, "eval_time_s": 258.8,
                             "samples_per_s": 0.034, "tokens_per_s": 2.2}}
    print_record(record)
    assert "0.034 | 2.2" in capsys.readouterr().out


def test_recommend_says_on_the_console_which_step_times_it_reused(capsys):
    """README: estimate and recommend reuse stored step timings "(the note says so)"; recommend's console said nothing
    (the note was only in --json's estimates), so a 13 s answer looked measured now. It now says which it reused."""
    from tunelab.cli.recommend import print_recommendation

    row = {"strategy": "head", "device": "CPU, 2 threads", "train_time_s": 30.0, "cache_build_s": 5.0,
           "trainable_params": 1, "total_params": 100, "fits": True, "why_not": None, "time_per_epoch_s": 10.0,
           "peak_memory_mb": 700.0, "reused": True}
    rec = {"strategy": "head", "metric": "accuracy", "reasons": ["r"], "notes": [],
           "config": {"model": "minilm", "data": "rotten-tomatoes", "batch_size": 32, "max_length": 128, "epochs": 3},
           "budget": {"minutes": 10, "memory_gb": 4}, "estimates": [row, {**row, "strategy": "lora", "reused": False}]}
    print_recommendation(rec)
    out = capsys.readouterr().out
    assert "step times reused from earlier measurements" in out and ": head; --remeasure" in out


def test_recommends_estimate_rows_keep_whether_the_timing_was_reused(monkeypatch):
    """The advice's cost rows dropped the estimate's ``reused`` flag, so recommend's console could not say it."""
    import tunelab.advice.estimate as estimate_module
    from tunelab.advice.recommend import _ESTIMATE_KEYS, _estimate_row
    from tunelab.config import TrainConfig

    stored = {**dict.fromkeys(_ESTIMATE_KEYS, 1.0), "strategy": "head", "notes": ["reused the measurement of ..."],
              "reused": True}
    monkeypatch.setattr(estimate_module, "estimate", lambda config, **kw: stored)
    assert _estimate_row(TrainConfig(strategy="head"), None)["reused"] is True


def test_evaluate_without_data_scores_the_test_split_of_the_data_the_run_trained_on(head_run, toy_csv):
    """`tunelab evaluate RUN` required --data although model/tunelab.json records the data; now it scores the test
    split of the recorded data, says which, and gives the numbers --data gives (the run's own test metrics)."""
    _, out = head_run
    code, printed, err = tunelab("evaluate", str(out))
    assert code == 0, err
    assert f"scoring the test split of {toy_csv.resolve()}, the data this run trained on" in err
    assert printed == tunelab("evaluate", str(out), "--data", str(toy_csv))[1]
    values = dict(line.split("\t") for line in printed.strip().splitlines())
    record = json.loads((out / "metrics.json").read_text())
    assert int(values["examples"]) == record["meta_info"]["n_test"]
    assert float(values["accuracy"]) == pytest.approx(record["metrics"]["test"]["accuracy"], abs=1e-4)
    assert float(values["loss"]) == pytest.approx(record["metrics"]["test"]["loss"], abs=1e-3)
    code, printed, _ = tunelab("evaluate", str(out), "--json")  # stdout stays JSON alone
    assert code == 0 and json.loads(printed)["split"] == "test"


def test_evaluate_without_data_reads_the_recorded_file_once(head_run, toy_csv, monkeypatch):
    """`tunelab evaluate RUN` read and split the recorded file to check its fingerprint, then read and split it again
    to score it: a big file was read twice. The check's split is scored; another seed or --split all is made of
    the file as the check read it, not read again (it was read twice)."""
    import tunelab.data.load as load
    from tunelab import evaluate_artifact

    _, out = head_run
    expected = tunelab("evaluate", str(out), "--data", str(toy_csv))[1]
    reads = []
    real = load.resolve
    monkeypatch.setattr(load, "resolve", lambda spec: reads.append(spec) or real(spec))
    code, printed, err = tunelab("evaluate", str(out))
    assert code == 0, err
    assert printed == expected and len(reads) == 1, reads
    reads.clear()
    assert evaluate_artifact(out)["examples"] == int(dict(line.split("\t") for line in printed.splitlines())["examples"])
    assert len(reads) == 1, reads  # from Python too
    for other in (["--seed", "7"], ["--split", "all"]):  # split otherwise than the check: not read again
        reads.clear()
        code, printed, err = tunelab("evaluate", str(out), *other)
        assert code == 0, err
        assert len(reads) == 1, (other, reads)
        assert printed == tunelab("evaluate", str(out), "--data", str(toy_csv), *other)[1]


def test_evaluate_with_another_seed_says_its_split_holds_rows_the_run_trained_on(head_run, toy_csv, caplog):
    """`tunelab evaluate RUN --seed 3` (no --data) drew another validation or test split of the data the run trained
    on, which holds rows of the run's training split, and printed its score as if held out, without a word."""
    import logging

    _, out = head_run
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        code, _, err = tunelab("evaluate", str(out), "--seed", "3", "--split", "validation")
    assert code == 0, err
    said = [r.getMessage() for r in caplog.records if "is not this run's seed" in r.getMessage()]
    assert len(said) == 1 and "--seed 3" in said[0] and "not held out" in said[0], said
    assert re.search(r"\(([1-9][\d,]*) of its [\d,]+ rows are in the run's training split\)", said[0]), said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        assert tunelab("evaluate", str(out), "--split", "validation")[0] == 0  # the run's own split: nothing to say
        assert tunelab("evaluate", str(out), "--seed", "3", "--split", "all")[0] == 0  # every row: no split drawn
    assert not [r for r in caplog.records if "is not this run's seed" in r.getMessage()]


def test_evaluate_without_data_refuses_the_recorded_file_once_it_has_changed(tiny_bert_dir, toy_csv, tmp_path, caplog):
    """`tunelab evaluate RUN` re-read the file the run recorded even after it was edited: it scored a split of other
    rows (some of them rows the model trained on) as if it were the run's test split. The run's fingerprint of its
    rows now says so: one line, exit 2, pass --data; named with --data, the file is scored with a warning. A run saved
    before model/tunelab.json kept the fingerprint is checked against its metrics.json."""
    data = tmp_path / "reviews.csv"
    data.write_bytes(toy_csv.read_bytes())
    _, run = _train("--model", str(tiny_bert_dir), "--data", str(data), "--strategy", "head", "--out", str(tmp_path / "run"))
    with caplog.at_level("WARNING", logger="tunelab"):
        assert tunelab("evaluate", str(run), "--data", str(data))[0] == 0  # unchanged: scored, nothing said
        assert tunelab("evaluate", str(run))[0] == 0
    assert "has changed" not in caplog.text
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:-10] + ["the film was good and moving,pos"] * 10) + "\n")  # ten rows edited
    code, printed, err = tunelab("evaluate", str(run))
    assert code == 2 and not printed
    assert len(err.strip().splitlines()) == 1, err
    assert f"trained on {data.resolve()}, which has changed since" in err and "pass --data" in err
    info_file = run / "model" / "tunelab.json"
    info = json.loads(info_file.read_text())
    del info["split"]["fingerprint"]  # as saved before it was kept there
    info_file.write_text(json.dumps(info))
    assert tunelab("evaluate", str(run))[0] == 2
    with caplog.at_level("WARNING", logger="tunelab"):
        code, printed, err = tunelab("evaluate", str(run), "--data", str(data))
    assert code == 0 and "accuracy" in printed
    assert f"{data} has changed since this run trained on it: its test split is not the one the run made" in caplog.text


def test_evaluate_without_data_says_in_one_line_when_the_recorded_data_cannot_be_read_again(
        tiny_bert_dir, toy_csv, toy_classification_data, tmp_path):
    """Data given in memory, or a file since moved: one line, exit 2, saying to pass --data (a traceback-free
    refusal from Python too, through the same evaluate_artifact)."""
    from tunelab import TrainConfig, evaluate_artifact, train
    from tunelab.errors import ConfigError

    memory = tmp_path / "memory"
    train(TrainConfig(model=str(tiny_bert_dir), strategy="head", epochs=1, batch_size=16, out=str(memory)),
          data=toy_classification_data, progress=False)
    code, printed, err = tunelab("evaluate", str(memory))
    assert code == 2 and not printed
    assert len(err.strip().splitlines()) == 1 and "given in memory" in err and "pass --data" in err, err
    with pytest.raises(ConfigError, match="given in memory"):
        evaluate_artifact(memory)
    assert "accuracy" in evaluate_artifact(memory, str(toy_csv))  # data given: scored as before
    moved = tmp_path / "moved.csv"
    moved.write_bytes(toy_csv.read_bytes())
    _, run = _train("--model", str(tiny_bert_dir), "--data", str(moved), "--strategy", "head", "--out",
                    str(tmp_path / "file"))
    moved.unlink()
    code, printed, err = tunelab("evaluate", str(run))
    assert code == 2 and not printed
    assert len(err.strip().splitlines()) == 1, err
    assert f"trained on {moved.resolve()}, which is no longer there (moved or deleted): pass --data" in err
