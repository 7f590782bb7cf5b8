"""The ``tunelab`` command: parse, call the library, print. Everything here is reachable from Python.

    tunelab models | datasets | strategies
    tunelab train --model minilm --data rotten-tomatoes --strategy lora
    tunelab predict runs/minilm-rotten-tomatoes-lora "a gripping, beautiful film"
    tunelab evaluate runs/minilm-rotten-tomatoes-lora --data rotten-tomatoes
    tunelab compare --model minilm --data rotten-tomatoes --strategies head,last-n,bitfit,lora,full
    tunelab recommend --model minilm --data rotten-tomatoes
    tunelab estimate --model minilm --strategy full
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import sys
from pathlib import Path

from tunelab.cli.listing import output_console, print_list
from tunelab.cli.options import _Parser, add_config_flags, config_from_args, warn_unused_fractions
from tunelab.errors import TunelabError, settings_as_flags
from tunelab.units import format_mb, format_rate

# ----------------------------------------------------------------------------- commands


def cmd_models(args) -> int:
    from tunelab.models import list_models

    columns = ("name", "family", "architecture", "parameters", "layers", "upstream", "source")
    print_list(list_models(), columns, title="built-in models (any transformers folder or hub id works too)",
               as_json=args.json, numeric=("layers",))
    return 0


def cmd_datasets(args) -> int:
    from tunelab.data import list_datasets

    rows = list_datasets()
    if args.json:
        print_list(rows, (), title="", as_json=True)
        return 0
    sizes = ("train", "validation", "test", "total")
    flat = [{**r, **{s: (r.get("rows") or {}).get(s) for s in sizes}} for r in rows]
    columns = ("name", "task", *sizes, "num_labels", "description")
    print_list(flat, columns, title="built-in datasets (or pass a CSV / JSONL / Parquet / TXT file or a datasets folder)",
               numeric=(*sizes, "num_labels"))
    return 0


def cmd_strategies(args) -> int:
    from tunelab.strategies import STRATEGIES, strategy_names

    rows = [  # fewest trained weights first
        {"name": name, "kind": STRATEGIES[name].kind.value, "default_lr": STRATEGIES[name].default_lr,
         "tasks": list(STRATEGIES[name].tasks), "compared": STRATEGIES[name].compared_by_default,
         "what_trains": STRATEGIES[name].summary}
        for name in strategy_names()
    ]
    # "compared": trained by `tunelab compare` when --strategies is not given (those that apply to the task)
    print_list(rows, ("name", "kind", "default_lr", "tasks", "compared", "what_trains"), title="strategies",
               as_json=args.json, numeric=("default_lr",))
    return 0


def print_record(record: dict) -> None:
    from rich.table import Table

    from tunelab.run.forgetting import unit_of

    ti, m = record["train_info"], record["metrics"]
    table = Table(title=f"{record['run_info']['strategy']} on {record['meta_info']['model']} + {record['meta_info']['data']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    as_loaded = (ti.get("as_loaded_validation") or {}).get("perplexity")
    for split in ("validation", "test"):
        for k, v in m.get(split, {}).items():
            table.add_row(f"{split} {k}", f"{v:.4f}")
            if split == "validation" and k == "perplexity" and as_loaded is not None:  # did training help?
                table.add_row("validation perplexity as loaded (before training)", f"{as_loaded:.4f}")
    table.add_row("trainable parameters", f"{ti['trainable_params']:,} of {ti['total_params']:,} ({100 * ti['trainable_share']:.2f} %)")
    table.add_row(f"peak memory ({ti['memory_kind']})", format_mb(ti['peak_memory_mb']))
    table.add_row("training time", f"{ti['train_time_s']:.1f} s")
    table.add_row("evaluation time", f"{ti['eval_time_s']:.1f} s")
    if ti.get("cache", {}).get("used"):
        table.add_row("frozen-layer cache", f"{ti['cache_time_s']:.1f} s, {format_mb(ti['cache'].get('size_mb', 0))}")
    table.add_row("samples/s | tokens/s", f"{format_rate(ti['samples_per_s'])} | {format_rate(ti['tokens_per_s'])}")
    forgot = ti.get("forgetting") or {}
    if "value" in forgot:
        table.add_row(
            f"forgetting ({unit_of(forgot)}, on {Path(forgot['reference']).name})",
            f"{forgot['value']:.4f} [{forgot['low']:.4f}, {forgot['high']:.4f}]",
        )
    output_console().print(table)


def cmd_train(args) -> int:
    from tunelab.run import ranks
    from tunelab.run.training import batch_search_off, micro_batches_off, train
    from tunelab.strategies.base import unused_options

    config = config_from_args(args).validate()  # a bad value first: then no warning that the option is ignored
    warn_unused_fractions(args, config)
    ignored = unused_options(config)
    if ignored and ranks.local_rank() == 0:  # every process of a launch reads the same options
        verb = "does" if len(ignored) == 1 else "do"
        logging.getLogger("tunelab").warning(f"{', '.join(ignored)} {verb} not apply to {config.strategy}, which does "
                                             "not read it: ignored")
    off = batch_search_off(config)
    if off and "auto_batch_size" in vars(args) and ranks.local_rank() == 0:  # typed: said; by default: in the record
        logging.getLogger("tunelab").warning(f"--auto-batch-size: {off}")
    off = micro_batches_off(config) if config.micro_batch_tokens else None
    if off and "micro_batch_tokens" in vars(args) and ranks.local_rank() == 0:  # typed: said; by default: the README's
        logging.getLogger("tunelab").warning(f"--micro-batch-tokens: {off}")
    record = train(config, progress=not (args.quiet or args.json))
    if not ranks.is_main():  # several processes: the main one reports
        return 0
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    print_record(record)
    out = Path(config.out) if config.out else Path(record["artifact"]["path"]).parent
    print(f"model: {record['artifact']['path']} ({record['artifact']['format']}); metrics: {out / 'metrics.json'}")
    return 0


def _read_texts(args) -> list[str]:
    texts = list(args.texts)
    empty = [str(i) for i, text in enumerate(texts, 1) if not text.strip()]
    if empty:  # (a --file's blank lines are skipped: they separate inputs there)
        raise TunelabError(f"text {', '.join(empty[:5])} of the arguments is empty: give each text to predict as a "
                           "non-empty argument")
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "not found"
            raise TunelabError(f"--file {path} {what}: pass a text file with one input per line")
        from tunelab.data.load import texts_of_table
        from tunelab.data.readers import read_utf8

        # a .csv, .jsonl ...: its text column(s), not its lines (the header, the labels): the column(s) the model was
        # trained on unless --text-column names others; a text file is read as training reads one (a BOM, UTF-16,
        # Windows' line ends, .gz: not the BOM glued to the first input)
        table = texts_of_table(path, args.text_column or _trained_text_column(args.model_dir))
        read = table[0] if table else [line for line in read_utf8(path, allow_empty=True).splitlines() if line.strip()]
        if not read and not texts:
            what = f"its column {table[1]} is empty" if table else "it is empty or holds only blank lines"
            raise TunelabError(f"--file {path} holds no input ({what}): give it one input per line (or a table's text "
                               "column), or give texts as arguments")
        texts += read
    if not texts:
        raise TunelabError("no input: give texts as arguments or --file FILE with one per line")
    return texts


def _trained_text_column(model_dir: str) -> str:
    """The text column(s) the run in ``model_dir`` read (``"premise,hypothesis"`` for a pair), or ``text``."""
    from tunelab.run.artifacts import find_model_dir
    from tunelab.run.evaluation import run_split_settings

    folder = find_model_dir(model_dir)
    try:
        info = json.loads((folder / "tunelab.json").read_text())
    except (OSError, ValueError):
        info = {}
    return str(run_split_settings(folder, info).get("text_column") or "text")


def cmd_predict(args) -> int:
    from tunelab.run.artifacts import predict

    given = {flag for flag, value in (("--top-k", args.top_k), ("--max-new-tokens", args.max_new_tokens),
                                      ("--system", args.system), ("--raw", args.raw or None)) if value is not None}
    args.top_k = 5 if args.top_k is None else args.top_k
    args.max_new_tokens = 40 if args.max_new_tokens is None else args.max_new_tokens
    if args.top_k < 0:
        raise TunelabError(f"--top-k {args.top_k}: give the number of classes to show (0: all)")
    if args.max_new_tokens < 1:
        raise TunelabError(f"--max-new-tokens {args.max_new_tokens}: give the number of tokens to generate, at least 1")
    for i, row in enumerate(predict(args.model_dir, _read_texts(args), max_new_tokens=args.max_new_tokens, raw=args.raw,
                                    system=args.system)):
        unused = given & ({"--max-new-tokens", "--system", "--raw"} if "label" in row else {"--top-k"})
        if i == 0 and unused:  # said once, not ignored in silence
            kind = "a classifier: it gives labels, not text" if "label" in row else "a language model: it generates text, not labels"
            logging.getLogger("tunelab").warning(f"{', '.join(sorted(unused))} ignored: {args.model_dir} is {kind}")
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        elif "label" in row:
            ranked = list(row["probabilities"].items())  # most probable first, as predict gives them
            shown = ranked[: args.top_k] if args.top_k else ranked
            probs = ", ".join(f"{k} {v:.3f}" for k, v in shown)
            more = f" (+{len(ranked) - len(shown)} more)" if len(shown) < len(ranked) else ""
            print(f"{row['label']}\t{probs}{more}\t{row['text']}")
        elif row.get("chat"):  # a user's turn and the assistant's reply, apart
            print(f"user: {row['text']}\nassistant: {row['generated'].strip()}")
        else:  # a continuation of the text
            print(f"{row['text']}{row['generated']}")
    return 0


def cmd_evaluate(args) -> int:
    from tunelab.run.evaluation import evaluate_artifact, recorded_data

    if args.data is None:  # the data the run trained on, as its model/tunelab.json records it
        args.data = recorded_data(args.model_dir)  # and its rows as its check read them: scored, not read again
        part = "every row" if args.split == "all" else f"the {args.split} split"
        print(f"tunelab: scoring {part} of {args.data.spec}, the data this run trained on (--data scores other data)",
              file=sys.stderr)
    result = evaluate_artifact(args.model_dir, args.data, split=args.split, text_column=args.text_column, label_column=args.label_column, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for k, v in result.items():
        print(f"{k}\t{v:.4f}" if isinstance(v, float) else f"{k}\t{v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from tunelab import __version__

    parser = _Parser(prog="tunelab", description="Adapt, compare and recommend: transfer learning vs full fine-tuning, measured on your data.")
    parser.add_argument("--version", action="version", version=f"tunelab {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, helptext, func in (
        ("models", "list built-in models", cmd_models),
        ("datasets", "list built-in datasets with their split sizes", cmd_datasets),
        ("strategies", "list strategies with their default learning rates", cmd_strategies),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
        p.set_defaults(func=func)

    p = sub.add_parser("train", help="adapt a model with one strategy")
    p.add_argument("--json", action="store_true", help="print the run record (metrics.json) as JSON, nothing else")
    add_config_flags(p)
    p.set_defaults(func=cmd_train, every_process=True)  # one run over every process of a launch

    p = sub.add_parser("predict", help="labels with probabilities, or generated text, from a trained folder")
    p.intermixed = True
    p.add_argument("model_dir", help="a run's --out folder, or its model/ folder")
    p.add_argument("texts", nargs="*", help="texts to label or continue (a pair as \"first<TAB>second\"); or --file")
    p.add_argument("--file", help="a text file, one input per line, or a table (.csv, .tsv, .jsonl, .json, .parquet) "
                                  "whose text column is read")
    p.add_argument("--text-column", default=None,
                   help="a --file table's text column, or two for a text pair (premise,hypothesis; default: the "
                        "column(s) training read)")
    p.add_argument("--max-new-tokens", type=int, help="tokens a language model generates per text (default: 40)")
    p.add_argument("--raw", action="store_true",
                   help="a model trained on conversations: give each text to it as it is, not as a user's turn in its chat "
                        "template")
    p.add_argument("--system", help="a model trained on conversations: a system turn before each text (training "
                                    "conversations that began with one); without it the chat template's own default")
    p.add_argument("--top-k", type=int, help="classes shown per text, most probable first (0: all; default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per text, with every class's probability")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a trained folder on data")
    p.add_argument("model_dir", help="a run's --out folder, or its model/ folder")
    p.add_argument("--data", default=None, help="a built-in dataset or a data file with the run's columns (default: "
                   "the data the run trained on, as its model/tunelab.json records it)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test", "all"],
                   help="the split of --data that training made of it (the same seed), or all: every row, unsplit "
                        "(a file held out from training; default: test)")
    p.add_argument("--text-column", default=None, help="the column of texts in --data, or two for a "
                   "text pair (default: the column(s) training read)")
    p.add_argument("--label-column", default=None, help="the column of labels in --data (default: the "
                   "column training read)")
    p.add_argument("--seed", type=int, default=None, help="the split's seed (default: the run's, so that --split test "
                                                          "is the test split training held out)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON (for scripts)")
    p.set_defaults(func=cmd_evaluate)

    from tunelab.cli import compare as cli_compare

    cli_compare.add_parser(sub)
    from tunelab.cli import recommend as cli_recommend

    cli_recommend.add_parser(sub)
    for command in sub.choices.values():  # -q after the command too (tunelab compare ... -q), as before it
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    return parser



def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tunelab.run.isolate import terminate_as_interrupt

    terminate_as_interrupt()
    _log_warnings()
    try:
        # in the try: the launcher stops a process still parsing when another exits (SIGTERM, taken as Ctrl-C)
        args = build_parser().parse_args(argv)
        args.command_line = list(sys.argv[1:] if argv is None else argv)  # what was typed: a resume hint repeats it
        from tunelab.run import ranks

        if ranks.launch_rank() > 0 and not getattr(args, "every_process", False):
            # under a launcher, a command that does not train over several processes (evaluate, predict, ...) runs in
            # the first process alone: each process printed the same scores, the same predictions
            return 0
        _quiet_libraries()
        with settings_as_flags():  # its messages name settings as the flags typed here (a library's: max_length=)
            code = args.func(args) or 0
        if code == 0:
            from tunelab.run import ranks

            ranks.shut_down_at_exit()  # under torchrun / accelerate launch: the process group goes before Python does
        return code
    except TunelabError as exc:
        from tunelab.errors import ConfigError
        from tunelab.run import ranks

        # options are the same on every process of a launch, and so is what is wrong with them: said once
        line = f"tunelab: error: {_rank_tag()}{exc}"
        if isinstance(exc, ConfigError):
            ranks.say_once(line)
        else:
            ranks.tell_the_launcher(line)  # the launcher's failure summary, for each process that met it
            print(line, file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        storage = _storage_error(exc)
        if storage is not None:
            # the disk filled or a folder became read-only mid-run: what was saved (the last checkpoint) is kept
            from tunelab.run import ranks

            where, why = storage
            line = (f"tunelab: error: {_rank_tag()}cannot write{where}: {why}; free space or make it writable, "
                    "then run the same command again with --resume (what was saved is kept)")
            ranks.tell_the_launcher(line)
            print(line, file=sys.stderr)
            return 1
        if _peer_gone(exc):  # several processes: the one that failed has said why; this one only lost it
            return 1
        raise
    except KeyboardInterrupt as exc:  # resilience.RunInterrupted says where the checkpoint is and how to resume
        from tunelab.run import ranks

        line = f"tunelab: interrupted: {exc}" if str(exc) else "tunelab: interrupted"
        # the launcher's summary names each stopped process: a process stopped while still starting (another failed
        # first, its line above) otherwise showed "To enable traceback see: ..." there
        ranks.tell_the_launcher(line)
        if ranks.local_rank() > 0:  # every process of the launch stops at the same step, saying the same: the first says it
            return 130
        print(line, file=sys.stderr)
        return 130


_STORAGE_ERRORS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO}
"""What writing a run's files meets when the disk fills or a folder stops being writable."""


def _rank_tag() -> str:
    """``[rank 1] `` on a process other than the main one of a run over several (``""`` otherwise)."""
    from tunelab.run import ranks

    # the launcher's word, not the process group's: an error can come before the group exists, and joining it then
    # would wait for every other process
    return f"[rank {ranks.launch_rank()}] " if ranks.launch_rank() > 0 else ""


def _storage_error(exc: Exception) -> tuple[str, str] | None:
    """``(" <file>", why)`` when ``exc`` is writing meeting a full disk or a folder that stopped being writable
    (:data:`_STORAGE_ERRORS`), else None: an ``OSError``, or safetensors' ``SafetensorError``, which is no OSError and
    carries the system's error as text ("... No space left on device (os error 28)")."""
    if isinstance(exc, OSError):
        if exc.errno not in _STORAGE_ERRORS:
            return None
        return (f" {exc.filename}" if exc.filename else ""), exc.strerror or str(exc)
    found = re.search(r"\(os error (\d+)\)", str(exc))
    if found is None or int(found.group(1)) not in _STORAGE_ERRORS:
        return None
    return "", os.strerror(int(found.group(1)))


def _peer_gone(exc: Exception) -> bool:
    """Whether ``exc`` is a collective operation failing because another process of the run stopped."""
    from tunelab.run import ranks

    if not ranks.distributed():
        return False
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, getattr(dist, "DistError", ())) or any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "remote worker crashing")
    )


class _ConsoleFormat(logging.Formatter):
    """tunelab's own warnings as ``tunelab: warning: ...``; another library's that reach the root logger under that
    library's name (``matplotlib: WARNING: ...``), so that none reads as tunelab's."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "tunelab" or record.name.startswith("tunelab."):
            return f"tunelab: warning: {record.getMessage()}"
        return f"{record.name.split('.')[0]}: {record.levelname.lower()}: {record.getMessage()}"


def _log_warnings() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_ConsoleFormat())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # once: a no-op where the root has a handler


def _quiet_libraries() -> None:
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # the hub's retries of a lookup ("'[Errno -2] ...' thrown while requesting HEAD ..."), twice each (its own handler
    # and the root's), before the one line that says what failed and what to do
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()
    # the report's plots: a font missing here falls back to another, which the user has nothing to do about
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
