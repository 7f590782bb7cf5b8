"""Files and folders into :class:`Table` objects, with every parser error turned into a DataError."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from tunelab.data.chunking import chunk_text
from tunelab.data.table import LABEL_ALIASES, TEXT_ALIASES, RawData, Table, brief
from tunelab.errors import DataError

SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")
#: Files of plain text (a causal LM's domain text: notes, documentation, books), read by :func:`read_txt`; a ``.md``
#: is read when given, or in a folder of documents (:func:`_text_corpus`), never taken for a split's file (a README.md
#: beside train.csv is no data).
PLAIN_TEXT_EXTENSIONS = (".txt", ".md")
#: Compressed text files (``train.csv.gz``, ``data.jsonl.xz``) are read through these, as pandas and datasets do.
COMPRESSIONS = (".gz", ".bz2", ".xz")
#: What a CSV's header is split on when it holds none of the expected separator (a spreadsheet's
#: export in a locale where the comma is the decimal mark uses ";").
_OTHER_SEPARATORS = (";", "\t", "|")
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
_CSV_LINE = re.compile(r"line (\d+)", re.IGNORECASE)
_CSV_UNCLOSED = re.compile(r"EOF inside string starting at row (\d+)")
_EXCEL_SEPARATOR = re.compile(r'"?sep=(.)"?')


def read_path(path: Path) -> RawData:
    """Read a file or folder given by the user."""
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; check the path, or name a built-in dataset (tunelab datasets)"
        )
    if path.is_dir():
        return _read_folder(path)
    table = read_file(path)
    return RawData(
        tables={"all": table},
        # a record is a row however the file numbers it for messages (a CSV's or JSON file's lines, a JSON array's items); a .txt file's are chunks
        source=f"{path.name} ({_kind(path, table)}, {table.num_rows} {'row' if table.unit in ('line', 'item') else table.unit}s)",
        warnings=list(table.warnings),
    )


def file_suffixes(path: Path) -> tuple[str, str | None]:
    """The data format's extension and the compression's (``None`` when not compressed), lower case:
    ``train.csv.gz`` gives ``(".csv", ".gz")``."""
    suffix = path.suffix.lower()
    if suffix in COMPRESSIONS:
        return Path(path.stem).suffix.lower(), suffix
    return suffix, None


def read_file(path: Path) -> Table:
    """One data file, chosen by extension (and read through its compression)."""
    suffix, compression = file_suffixes(path)
    if suffix not in (*SUPPORTED_EXTENSIONS, *PLAIN_TEXT_EXTENSIONS) or (compression and suffix == ".parquet"):
        supported = ", ".join(dict.fromkeys((*SUPPORTED_EXTENSIONS, *PLAIN_TEXT_EXTENSIONS)))
        name = f"{suffix}{compression}" if compression else suffix
        raise DataError(
            f"{path}: unsupported file type '{name or '(none)'}'; use one of {supported} "
            f"(the text ones may be compressed: {', '.join(COMPRESSIONS)}), or a folder saved with datasets' save_to_disk"
        )
    if suffix == ".parquet":
        return read_parquet(path)
    text = read_utf8(path)
    if suffix in (".csv", ".tsv"):
        return read_csv(path, text, sep="\t" if suffix == ".tsv" else ",")
    if suffix in PLAIN_TEXT_EXTENSIONS:
        return read_txt(path, text)
    return read_jsonl(path, text)


def _kind(path: Path, table: Table) -> str:
    """The format as read: a ``.json`` or ``.jsonl`` file is JSON lines when it was read a line a record, else JSON
    (an array, or an object holding one), whatever its extension says."""
    suffix, compression = file_suffixes(path)
    json_kind = "JSON lines" if table.unit == "line" else "JSON"
    text_kind = "plain text" if table.unit == "chunk" else "TSV"  # a .txt that holds a table: read_txt
    kind = {".jsonl": json_kind, ".json": json_kind, ".txt": text_kind, ".md": text_kind}.get(suffix, suffix.lstrip(".").upper())
    return f"{kind}, {compression.lstrip('.')}" if compression else kind


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in one of :data:`COMPRESSIONS`."""
    compression = file_suffixes(path)[1]
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(
            f"{path}: cannot be read ({err.strerror}); check the path and its permissions"
        ) from err
    if compression is None:
        return data
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}[compression]
    try:
        return opener(data)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as err:
        raise DataError(
            f"{path}: not a readable {compression.lstrip('.')} file ({str(err) or type(err).__name__}); "
            "compress it again, or give it uncompressed"
        ) from err


#: Byte-order marks of the Unicode encodings other than UTF-8 that files announce themselves in (Excel's
#: "Unicode Text" export is UTF-16 with a BOM); UTF-32's come first: its little-endian BOM starts with UTF-16's.
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def read_utf8(path: Path, allow_empty: bool = False) -> str:
    """The file's text: UTF-8 (with or without a BOM), or UTF-16 / UTF-32 announced by their BOM; other bytes
    and empty files (unless ``allow_empty``) are reported with their place."""
    data = _read_bytes(path)
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8-sig")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        if encoding != "utf-8-sig":
            raise DataError(f"{path}: starts with a {encoding.upper()} byte-order mark but is not valid "
                            f"{encoding.upper()} at byte offset {err.start}; re-save the file as UTF-8") from err
        start = err.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)  # utf-8-sig counts after its BOM
        line = data[:start].count(b"\n") + 1
        raise DataError(
            f"{path}: byte 0x{data[start]:02x} at byte offset {start} (line {line}) is not valid UTF-8; "
            "re-save the file as UTF-8 (e.g. iconv -f cp1252 -t utf-8, or Excel's 'CSV UTF-8')"
        ) from err
    text = text.lstrip("\ufeff")
    if not text.strip() and not allow_empty:
        raise DataError(f"{path}: the file is empty; give a file with {_what_a_file_holds(path)}")
    return text


def _what_a_file_holds(path: Path) -> str:
    """What a data file of ``path``'s kind should hold, for the line that says it holds nothing."""
    kinds = [s for s in path.suffixes if s not in (".gz", ".bz2", ".xz")]
    kind = kinds[-1].lower() if kinds else ""
    if kind in PLAIN_TEXT_EXTENSIONS:
        return "text in it (documents or paragraphs separated by blank lines)"
    if kind in (".jsonl", ".json"):
        return "one JSON object per line (a text and a label, or a conversation's messages)"
    return "a header and data rows"


def read_csv(path: Path, text: str, sep: str = ",") -> Table:
    """A CSV or TSV with a header line; every cell is read as a string."""
    import pandas as pd

    warnings = []
    if "\r" in text:  # Windows' and old Macs' line ends: one kind from here on
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    first, _, rest = text.partition("\n")
    declared = _EXCEL_SEPARATOR.fullmatch(first.strip())
    skipped = 0  # lines of the file before ``text``'s first
    if declared:  # Excel's "sep=;" line: the separator the rest is written with
        sep, text, skipped = declared.group(1), rest, 1
    other = None if declared else _header_separator(text, sep)
    if other is not None:
        named = {"\t": "tabs", ";": "semicolons", "|": "'|'"}[other]
        expected = "tab" if sep == "\t" else "comma"
        warnings.append(f"{path}: the header has no {expected}; reading the file as separated by {named}")
        sep = other
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: the file is empty; give a file with a header and data rows") from err
    except (pd.errors.ParserError, ValueError, OverflowError, MemoryError) as err:
        records = _records(text, sep) or []
        starts = [start + skipped for start, _ in records]
        raise DataError(f"{path}: {_csv_problem(str(err), sep, starts)}") from err
    if frame.empty:
        raise DataError(
            f"{path}: the header is the only line, there are no data rows; add rows below the header"
        )
    header = next(csv.reader(io.StringIO(text.partition("\n")[0]), delimiter=sep), [])
    if len(header) == len(frame.columns):  # Excel's empty columns past the data ("text,label,,"): nothing to read
        empty = [i for i, h in enumerate(header) if not h.strip() and not frame.iloc[:, i].str.strip().any()]
        if empty:
            frame = frame.drop(columns=[frame.columns[i] for i in empty])
            header = [h for i, h in enumerate(header) if i not in set(empty)]
    repeated = sorted({h.strip() for h in header if [x.strip() for x in header].count(h.strip()) > 1})
    if repeated and not repeated[0]:  # sorted: a blank name first
        unnamed = [str(i + 1) for i, h in enumerate(header) if not h.strip()]
        raise DataError(f"{path}: the header leaves columns {', '.join(unnamed)} without a name, and they hold data; "
                        "name them in the header line, or delete them")
    if repeated:  # pandas renames the second 'label' to 'label.1', and the first would be read in silence
        raise DataError(f"{path}: the header names column {brief(repeated[0])} more than once; give each column its "
                        "own name")
    names = [str(name).strip() for name in frame.columns]  # "text, label" means "label", not " label"
    if len(set(names)) < len(names):
        names = [str(name) for name in frame.columns]
    lines = _record_lines(text, sep, skipped, len(frame))
    frame, lines = _without_repeated_headers(path, frame, lines, warnings)
    columns = {name: frame[column].tolist() for name, column in zip(names, frame.columns)}
    _warn_swallowed_rows(path, columns, lines, sep, warnings)
    return Table(columns=columns, origin=str(path), unit="line", numbers=lines, warnings=warnings)


def _record_lines(text: str, sep: str, skipped: int, count: int) -> list[int]:
    """The file line each data row starts on (1-based, ``skipped`` lines before ``text``), so that messages name
    the line an editor shows, as the parser's own errors do: a quoted cell that spans lines moves the rows after it
    down. The rows are found as pandas finds them (blank and whitespace-only lines are no rows); should the two
    readings ever disagree on the count, the rows are numbered as if one a line."""
    records = _records(text, sep)
    starts = [start + skipped for start, blank in records or [] if not blank]
    if len(starts) != count + 1:  # the header is the first record
        return list(range(skipped + 2, skipped + 2 + count))
    return starts[1:]


def _records(text: str, sep: str) -> list[tuple[int, bool]] | None:
    """Each record of ``text`` as csv reads it (a blank line is one; so is an unclosed quote's rest): the line it
    starts on (1-based) and whether it is blank (no characters but whitespace other than ``sep``, which pandas
    skips). ``None`` where csv cannot read the text (a cell over its field size limit, which pandas reads)."""
    physical = io.StringIO(text).readlines()
    reader = csv.reader(iter(physical), delimiter=sep)
    found: list[tuple[int, bool]] = []
    end = 0
    try:
        for _ in reader:
            start, end = end + 1, reader.line_num
            found.append((start, start == end and not physical[start - 1].replace(sep, "x").strip()))
    except csv.Error:
        return None
    return found


def _warn_swallowed_rows(path: Path, columns: dict[str, list[str]], lines: list[int], sep: str,
                         warnings: list[str]) -> None:
    """A warning for each cell that spans lines which read like rows of their own: as many fields as the header, each
    other field a value its column holds elsewhere. A quote that opens a cell and is closed only rows later (an
    unbalanced ``"`` at the start of a text) makes one cell of those rows, and their labels are lost in silence."""
    names = list(columns)
    if len(names) < 2 or not any("\n" in cell for values in columns.values() for cell in values):
        return
    seen = {name: set(values) for name, values in columns.items()}
    for name in names:
        others = [n for n in names if n != name]
        for line_number, cell in zip(lines, columns[name]):
            if "\n" not in cell:
                continue
            lines = cell.split("\n")
            rows = []
            for line in lines[1:]:
                fields = next(csv.reader([line], delimiter=sep), [])
                if len(fields) == len(names) and all(fields[names.index(o)] in seen[o] for o in others):
                    rows.append(line)
            if rows:
                warnings.append(f"{path}: line {line_number}'s {brief(name)} cell spans {len(lines)} lines, {len(rows)} of "
                                f"which read like rows of their own ({brief(rows[0])}): a quote (\") that opens a cell "
                                "and closes only rows later joins them into one; if they are rows, close the quote or "
                                "double it (\"\")")


def _without_repeated_headers(path: Path, frame, lines: list[int], warnings: list[str]):
    """``frame`` and its rows' ``lines`` without the rows that repeat its header cell for cell (files concatenated
    with their headers, a log appended to by several writers), each named in a warning: as data, such a row would be
    one example of a class named like the label column."""
    if len(frame.columns) < 2:  # one column: a row equal to its name may be a real text
        return frame, lines
    header = [str(name) for name in frame.columns]
    repeats = frame.apply(lambda row: [str(v) for v in row.tolist()] == header, axis=1)
    if not bool(repeats.any()):
        return frame, lines
    found = [lines[int(i)] for i in frame.index[repeats]]  # the file's lines, as the other messages name them
    if len(found) == len(frame):
        raise DataError(f"{path}: every data row repeats the header; add data rows below it")
    shown = ", ".join(map(str, found[:5])) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    warnings.append(f"{path}: dropped {len(found)} row(s) that repeat the header "
                    f"({'line' if len(found) == 1 else 'lines'} {shown}): files joined with their headers?")
    kept = [line for line, repeat in zip(lines, repeats.tolist()) if not repeat]
    return frame[~repeats].reset_index(drop=True), kept


def _header_separator(text: str, sep: str) -> str | None:
    """The separator the header uses when it is not ``sep``: the one other common separator in the
    header line (outside quotes) that also splits the next line into as many fields; else ``None``."""
    import csv

    lines = text.splitlines()
    if len(lines) < 2:
        return None

    def fields(line: str, delimiter: str) -> int:
        return len(next(csv.reader([line], delimiter=delimiter), []))

    if fields(lines[0], sep) > 1:
        return None
    width = {d: fields(lines[0], d) for d in _OTHER_SEPARATORS if d != sep}
    found = [d for d, n in width.items() if n > 1 and fields(lines[1], d) == n]
    return found[0] if len(found) == 1 else None


def _csv_problem(message: str, sep: str, starts: list[int] | None = None) -> str:
    """pandas' parser message as 'what, where, what to do'. pandas numbers records, not lines (a blank line is one);
    ``starts`` holds the file line each record starts on, which the message names instead."""
    kind = "TSV" if sep == "\t" else "CSV"
    starts = starts or []

    def line(record: int) -> int:  # 0-based record, header included
        return starts[record] if 0 <= record < len(starts) else record + 1

    lines = message.strip().splitlines()
    message = (lines[-1] if lines else "unreadable").replace("Error tokenizing data. C error: ", "")
    unclosed = _CSV_UNCLOSED.search(message)
    if unclosed:
        return (
            f"malformed {kind}: a quoted field starting on line {line(int(unclosed.group(1)))} is never closed; "
            'close the quote, or write a literal quote as two ("")'
        )
    match = _CSV_LINE.search(message)
    where = f"line {line(int(match.group(1)) - 1)}" if match else "an unknown line"
    message = _CSV_LINE.sub(lambda m: f"line {line(int(m.group(1)) - 1)}", message)
    return f"malformed {kind} at {where} ({message}); check quoting and the number of fields on that line"


def read_jsonl(path: Path, text: str) -> Table:
    """JSON lines (one object per line); a ``.json`` file holding one array of objects works too."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _read_json_array(path, text)
    if stripped.startswith("{"):
        found = _records_of_object(path, text)
        if found is not None:
            records, key = found
            table = _array_table(path, text, records)
            table.warnings.append(f"{path}: one JSON object; its {len(records)} records are read from its key {brief(key)}")
            return table
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records.append(_parse_object(path, line, number))
        numbers.append(number)
    return _records_table(path, records, numbers, unit="line")


def _parse_object(path: Path, line: str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, or a number with too many digits
        reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err).splitlines()[0]
        raise DataError(
            f"{path}: line {number} is not valid JSON ({reason}); each line must be one JSON object like "
            '{"text": "...", "label": "..."} or {"messages": [{"role": "user", "content": "..."}, ...]}'
        ) from err
    if not isinstance(value, dict):
        raise DataError(
            f"{path}: line {number} is a JSON {type(value).__name__}, not an object; each line must be one JSON "
            'object like {"text": "...", "label": "..."} or {"messages": [...]}'
        )
    if "\\ud" in line.lower():
        _check_surrogates(path, value, f"line {number}")
    return value


def _check_surrogates(path: Path, value: Any, where: str) -> None:
    """A ``\\ud800``-style escape without its pair decodes to text that cannot be stored."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(
            f"{path}: {where} has an unpaired \\u surrogate escape, which is not valid Unicode text; "
            "fix or remove that escape"
        ) from err


def _records_of_object(path: Path, text: str) -> tuple[list[Any], str] | None:
    """A JSON file that is one object holding its records under one key (``{"data": [{...}, ...]}``, as
    ``datasets.load_dataset("json", field=...)`` reads): the records and the key; None when the text is not one
    JSON object (JSON lines are). An object with no such key, or several, is refused in one line."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    lists = [k for k, v in value.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
             and not any("role" in x or "from" in x for x in v)]  # a chat's turns are one record, not records
    if not lists and any(isinstance(v, list) for v in value.values()):
        return None  # one record with a list field (a one-line chat): JSON lines of one row
    if len(lists) == 1:
        return value[lists[0]], lists[0]
    keys = ", ".join(brief(k) for k in list(value)[:8])
    if len(lists) > 1:
        raise DataError(f"{path}: one JSON object with several arrays of records ({', '.join(brief(k) for k in lists)}); "
                        "give one of them as its own file (a JSON array, or one object per line)")
    if not any(isinstance(v, (list, dict)) for v in value.values()):
        return None  # one flat record on one line: a JSON lines file of one row
    raise DataError(f"{path}: one JSON object (keys {keys}) with no array of records in it; give one object per "
                    'line like {"text": "...", "label": "..."}, or a JSON array of them')


def _read_json_array(path: Path, text: str) -> Table:
    try:
        values = json.loads(text)
    except (ValueError, RecursionError) as err:
        where = f"line {err.lineno}" if isinstance(err, json.JSONDecodeError) else "somewhere"
        raise DataError(f"{path}: invalid JSON at {where}; give JSON lines (one object per line)") from err
    return _array_table(path, text, values)


def _array_table(path: Path, text: str, values: Any) -> Table:
    bad = (
        [i for i, value in enumerate(values) if not isinstance(value, dict)]
        if isinstance(values, list)
        else [0]
    )
    if bad:
        raise DataError(
            f"{path}: item {bad[0] + 1} of the JSON array is not an object; give one object per row"
        )
    if "\\ud" in text.lower():
        for i, value in enumerate(values):
            _check_surrogates(path, value, f"item {i + 1}")
    return _records_table(path, values, list(range(1, len(values) + 1)), unit="item")


def _records_table(path: Path, records: list[dict[str, Any]], numbers: list[int], unit: str) -> Table:
    if not records:
        raise DataError(f"{path}: the file is empty (no JSON objects); add one object per line")
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {name: [record.get(name) for record in records] for name in names}
    return Table(columns=columns, origin=str(path), unit=unit, numbers=numbers)


def read_txt(path: Path, text: str) -> Table:
    """Plain text for language modelling: blank-line paragraphs merged into ~1-2k character chunks; a table saved as
    text (:func:`tab_table`: Excel's "Unicode Text" and "Text (Tab delimited)" are tab-separated ``.txt`` files) is
    read as the TSV it is, with a warning."""
    columns = tab_table(text)
    if columns is not None:
        table = read_csv(path, text, sep="\t")
        table.warnings.insert(0, f"{path}: read as a tab-separated table (columns {', '.join(map(brief, columns[:6]))}"
                                 f"{' ...' if len(columns) > 6 else ''}), as Excel saves one as .txt (\"Unicode Text\", "
                                 "\"Text (Tab delimited)\"), not as plain text; name it .tsv to say so")
        return table
    chunks = chunk_text(text)
    if not chunks:
        raise DataError(f"{path}: the file has no text; give a UTF-8 text file with paragraphs")
    return Table(columns={"text": chunks}, origin=str(path), unit="chunk", task_hint="causal-lm")


def tab_table(text: str) -> list[str] | None:
    """The header of a table saved as text (a spreadsheet's tab-separated export), or None for plain text: a header
    of distinct, non-empty names, one of them a column tunelab reads without being told (text, label, or a name it
    takes for them: :data:`tunelab.data.table.TEXT_ALIASES`), over at least one record, each record with as many
    tab-separated fields (two or more). Lines of tab-separated sentences (a parallel corpus) stay plain text."""
    first = text.partition("\n")[0]
    known = {"text", "label", *TEXT_ALIASES, *LABEL_ALIASES}
    if "\t" not in first or not known & {name.strip().casefold() for name in first.split("\t")}:
        return None
    records = csv.reader(io.StringIO(text), delimiter="\t")
    try:
        header = next(records)
        width, rows = len(header), 0
        for record in records:
            if record and len(record) != width:
                return None
            rows += bool(record)
    except csv.Error:
        return None
    names = [name.strip() for name in header]
    if rows < 1 or width < 2 or len(set(names)) < width:
        return None
    return names if all(names) else None


def read_parquet(path: Path) -> Table:
    """A Parquet file read with pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{path}: not a readable Parquet file ({reason}); re-export it, or use CSV or JSON lines"
        ) from err
    if table.num_rows == 0:
        raise DataError(f"{path}: the Parquet file has no rows; add data rows")
    columns = {name: _clean_floats(values) for name, values in table.to_pydict().items()}
    return Table(columns=columns, origin=str(path))


def _clean_floats(values: list[Any]) -> list[Any]:
    """NaN stands for a missing value in Parquet and pandas exports; treat it as None."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def _read_folder(path: Path) -> RawData:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return read_saved_dataset(path)
    files = split_files(path)
    if "train" not in files and (corpus := _text_corpus(path)) is not None:
        return corpus
    if "train" not in files:
        found = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
        raise DataError(
            f"{path}: is a folder without recognisable data (found: {found}); give a data file, a folder with "
            "train/validation/test files (.csv, .tsv, .jsonl, .parquet, .txt), a folder of plain-text documents (.txt, .md: "
            "a causal LM's corpus), or a folder saved with save_to_disk"
        )
    tables = {split: read_file(file) for split, file in files.items()}
    warnings = [w for table in tables.values() for w in table.warnings]
    other = sorted(p.name for p in path.iterdir() if p.is_file() and p not in files.values() and not p.name.startswith(".")
                   and file_suffixes(p)[0] in SUPPORTED_EXTENSIONS)
    if other:  # data files the split names leave out, as a saved DatasetDict's other splits are said to be
        warnings.append(f"{path}: ignored {', '.join(brief(n) for n in other[:5])}{' and more' if len(other) > 5 else ''} "
                        "(only files named train, validation/valid/dev and test are read)")
    return RawData(tables=tables, source=folder_source(files), user_split=True, warnings=warnings, files=files)


def _text_corpus(path: Path) -> RawData | None:
    """A folder of plain-text documents (``.txt`` / ``.md``, no train/validation/test names, no other data file): one
    corpus for a causal LM, each file chunked as :func:`read_txt` chunks one (a chunk never spans two files); an empty
    file is skipped, with a warning. None for any other folder."""
    data = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")
            and file_suffixes(p)[0] in (*SUPPORTED_EXTENSIONS, *PLAIN_TEXT_EXTENSIONS)]
    if not data or any(file_suffixes(p)[0] not in PLAIN_TEXT_EXTENSIONS for p in data):
        return None
    chunks: list[str] = []
    skipped: list[str] = []
    for file in data:
        text = read_utf8(file, allow_empty=True)
        if text.strip() and tab_table(text) is not None:
            return None  # a spreadsheet's table saved as .txt: not a document
        pieces = chunk_text(text)
        chunks += pieces
        if not pieces:
            skipped.append(file.name)
    if not chunks:
        raise DataError(f"{path}: its {len(data)} text file(s) are empty; give a folder of UTF-8 text files with paragraphs")
    warnings = [f"{path}: skipped {len(skipped)} empty file(s): {', '.join(brief(n) for n in skipped[:5])}"
                f"{' and more' if len(skipped) > 5 else ''}"] if skipped else []
    table = Table(columns={"text": chunks}, origin=f"{path}/", unit="chunk", task_hint="causal-lm")
    return RawData(tables={"all": table}, warnings=warnings,
                   source=f"{path.name}/ (plain text, {len(data) - len(skipped)} files, {len(chunks)} chunks)")


def folder_source(files: dict[str, Path], left_out: tuple[str, ...] = ()) -> str:
    """How a folder of split ``files`` is described (a run's meta_info.data, its reports and model card): the files
    read, then the splits ``left_out`` (an unlabelled test.csv beside a labelled train.csv), so that it lists only what
    was used: ``kaggle/ (train.csv; left out, unlabelled: test.csv)``."""
    folder = next(iter(files.values())).parent.name
    used = ", ".join(file.name for split, file in files.items() if split not in left_out)
    gone = ", ".join(files[split].name for split in left_out)
    return f"{folder}/ ({used}" + (f"; left out, unlabelled: {gone}" if gone else "") + ")"


def split_files(path: Path) -> dict[str, Path]:
    """``train.*``, ``validation.*`` (or ``valid``/``dev``) and ``test.*`` files in a folder."""
    found: dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        kind, compression = file_suffixes(file)
        split = SPLIT_ALIASES.get((Path(file.stem).stem if compression else file.stem).lower())
        if split is None or not file.is_file() or kind not in SUPPORTED_EXTENSIONS:
            continue
        if split in found:
            raise DataError(
                f"{path}: both {found[split].name} and {file.name} hold the {split} split; keep only one of them"
            )
        found[split] = file
    return found


def read_saved_dataset(path: Path) -> RawData:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:  # noqa: BLE001 - any failure inside datasets means the folder is unusable
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{path}: cannot be loaded with datasets.load_from_disk ({reason}); save it again"
        ) from err
    if isinstance(loaded, datasets.Dataset):
        table = _dataset_table(loaded, str(path))
        return RawData(tables={"all": table}, source=f"{path.name}/ (saved Dataset, {table.num_rows} rows)")
    return _dataset_dict(loaded, path)


IN_MEMORY_FORMS = ("a datasets Dataset / DatasetDict, a pandas DataFrame, a list of dicts (one per example), a dict "
                   "of columns ({'text': [...], 'label': [...]}) or a dict of splits ({'train': ..., 'test': ...})")
"""The forms of data in memory that :func:`in_memory_dataset` reads, as messages list them."""


def _is_table(value: Any) -> bool:
    """Whether ``value`` is one table of examples in memory (one split of a dict of splits)."""
    import datasets

    return (isinstance(value, datasets.Dataset) or _is_frame(value)
            or (isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)))


def _is_frame(value: Any) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame"


def _from_dict(data: dict) -> Any:
    """A dict given as data: of splits (every value a table: ``{"train": frame, "test": frame}``) as a DatasetDict,
    of columns (every value a list, tuple, NumPy array or pandas Series: ``{"text": [...], "label": [...]}``) as a
    Dataset; anything else is one :class:`DataError` (was: 'data must be ...; got a dict')."""
    import datasets

    if not data:
        raise DataError("the dict given as data is empty: give columns ({'text': [...], 'label': [...]}) or splits "
                        "({'train': ..., 'test': ...})")
    if all(_is_table(value) for value in data.values()):
        return datasets.DatasetDict({str(key): in_memory_dataset(value) for key, value in data.items()})
    columnar = (list, tuple, range)
    if all(isinstance(v, columnar) or hasattr(v, "tolist") and getattr(v, "ndim", 1) == 1 for v in data.values()):
        columns = {str(key): value.tolist() if hasattr(value, "tolist") else list(value) for key, value in data.items()}
        lengths = {key: len(values) for key, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"the dict of columns given as data has columns of different lengths "
                            f"({', '.join(f'{k}: {n}' for k, n in lengths.items())}); give every column one value per example")
        if not any(lengths.values()):
            raise DataError("the dict of columns given as data has no rows; add data rows")
        try:
            return datasets.Dataset.from_dict(columns)
        except (TypeError, ValueError) as exc:  # pyarrow's: a column holding numbers in one row and text in another
            raise DataError(f"the dict of columns given as data cannot be read as a table: "
                            f"{' '.join(str(exc).split())[:200]}; give each column one type of value") from exc
    key, value = next((k, v) for k, v in data.items() if not _is_table(v))
    raise DataError(f"the dict given as data holds a {type(value).__name__} under {brief(key)}: give a dict of "
                    "columns ({'text': [...], 'label': [...]}: a list per column) or of splits ({'train': frame, "
                    "'test': frame}: a DataFrame, Dataset or list of dicts per split)")


def in_memory_dataset(data: Any) -> Any:
    """Data in memory as a ``datasets`` Dataset (a DataFrame, a list of dicts, a dict of columns) or DatasetDict (a
    dict of splits), what ``save_to_disk`` writes and :func:`read_in_memory` reads (:data:`IN_MEMORY_FORMS`);
    anything else as it is."""
    import datasets

    if _is_frame(data):
        try:
            return datasets.Dataset.from_pandas(data, preserve_index=False)
        except (TypeError, ValueError) as exc:  # pyarrow's (a column of ints and texts), datasets' (a name twice)
            detail = "; ".join(str(a) for a in exc.args) if len(exc.args) > 1 else str(exc)
            raise DataError(f"the DataFrame given as data cannot be read as a table: {' '.join(detail.split())[:200]}; "
                            "give every column its own name and one type of value (e.g. frame[column].astype(str))") from exc
    if isinstance(data, dict) and not isinstance(data, datasets.DatasetDict):
        return _from_dict(data)
    if isinstance(data, list):
        wrong = next((row for row in data if not isinstance(row, dict)), None)
        if not data or wrong is not None:
            raise DataError("the list given as data is empty" if not data else
                            f"the list given as data holds a {type(wrong).__name__} ({wrong!r:.60}): give one dict per "
                            "example, e.g. {'text': ..., 'label': ...}" + (
                                ", or texts and labels as a dict of columns, {'text': texts, 'label': labels} "
                                "({'text': texts} with task='causal-lm' for a language model)"
                                if all(isinstance(row, str) for row in data) else ""))
        try:
            return datasets.Dataset.from_list(data)
        except (TypeError, ValueError) as exc:  # pyarrow's: a column holding numbers in one row and text in another
            raise DataError(f"the list of dicts given as data cannot be read as a table: {' '.join(str(exc).split())[:200]}; "
                            "give every row the same keys, each with one type of value") from exc
    return data


def read_in_memory(data: Any) -> RawData | None:
    """A ``datasets.Dataset`` / ``DatasetDict``, a pandas ``DataFrame`` or a list of dicts (one per example, as
    JSONL holds them) held in memory, read as its saved form would be (:func:`read_saved_dataset`); ``None`` for
    anything else."""
    import datasets

    data = in_memory_dataset(data)
    if isinstance(data, datasets.Dataset):
        table = _dataset_table(data, "the in-memory Dataset")
        return RawData(tables={"all": table}, source=f"in-memory Dataset ({table.num_rows} rows)")
    if isinstance(data, datasets.DatasetDict):
        return _dataset_dict(data, "the in-memory DatasetDict")
    return None


def _dataset_dict(loaded: Any, path: Path | str) -> RawData:
    tables: dict[str, Table] = {}
    warnings: list[str] = []
    for key in loaded:
        split = SPLIT_ALIASES.get(key.lower())
        if split is None:
            warnings.append(
                f"ignored split {brief(key)} of {getattr(path, 'name', path)} (only train, validation/valid/dev and "
                "test are used)"
            )
            continue
        if split in tables:
            raise DataError(
                f"{path}: two splits map to '{split}' ({', '.join(loaded)}); keep only one of them"
            )
        table = _dataset_table(loaded[key], f"{path}[{key}]")
        hidden = [c for c in table.class_names if all(v is None for v in table.columns[c])]
        if split != "train" and hidden:  # GLUE's test splits: every label -1, the answers kept by the benchmark
            warnings.append(f"left out split {brief(key)} of {getattr(path, 'name', path)}: every {brief(hidden[0])} is "
                            "missing (-1, a benchmark's hidden answers), so it cannot score; it is carved from train instead")
            continue
        tables[split] = table
    if "train" not in tables:
        raise DataError(
            f"{path}: the {'saved ' if isinstance(path, Path) else ''}DatasetDict has no 'train' split (found: "
            f"{', '.join(loaded)}); add one"
        )
    source = f"{path.name}/ (saved DatasetDict)" if isinstance(path, Path) else "in-memory DatasetDict"
    return RawData(tables=tables, source=source, user_split=True, warnings=warnings)


def _dataset_table(dataset: Any, origin: str) -> Table:
    import datasets

    if dataset.num_rows == 0:
        raise DataError(f"{origin}: the dataset has no rows; add data rows")
    columns = {name: _clean_floats(values) for name, values in dataset.to_dict().items()}
    class_names: dict[str, list[str]] = {}
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel) and name in columns:
            columns[name] = [None if v is None or v < 0 else feature.names[v] for v in columns[name]]
            class_names[name] = list(feature.names)
    return Table(columns=columns, origin=origin, class_names=class_names)
