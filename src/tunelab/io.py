"""Files and folders that are never half-written: write beside the target, flush, rename into place.

Every result, record, checkpoint, artifact, cache and conversion tunelab writes goes through
:func:`atomic_write_text` / :func:`write_json` (one file) or :func:`atomic_dir` (one folder). A kill
at any moment leaves either the old target or the new one, never a mix; a temporary left by a kill
starts with ``.`` (``.tmp-`` for folders) and is removed by the next run that owns the place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError, setting

# written last into a folder that is complete (a checkpoint, an artifact): a folder without it is partial
MARKER = ".tunelab-complete"


def folder_problem(path: str | Path) -> str | None:
    """Why the folder ``path`` cannot be created (a file in the way, a parent that is not writable), or ``None``."""
    path = Path(path)
    try:
        os.fsencode(path).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):  # the model card, tunelab.json and the record name their folder
        return "it is not a UTF-8 path: choose a folder whose name is valid UTF-8"
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return None
    if not existing.is_dir():
        return f"{existing} is a file, not a folder" if existing == path else f"{existing} is a file, so no folder can be made under it"
    if not os.access(existing, os.W_OK | os.X_OK):  # the folder itself too: a run cannot write in it
        return f"{existing} is not writable"
    return None


LOCK_NAME = ".tunelab.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[None]:
    """Hold ``folder`` for one command (an exclusive ``flock`` on its lock file, released however the process ends):
    a second command writing into the same folder at once is refused in one line, instead of both writing the same
    runs and records. Where the file system has no locks, nothing is held."""
    import fcntl

    folder = Path(folder)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip()
        os.close(fd)
        raise TunelabError(f"{folder} is in use by another {command}{f' (process {holder})' if holder else ''}: "
                           f"wait for it to end, or choose another {setting('out')}") from None
    except OSError:  # no locks on this file system
        os.close(fd)
        yield
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def folder_part(text: str, *, hashed: bool = True) -> str:
    """``text`` (a model's or data's name) as part of a folder's name that a shell takes as one word: each run of
    characters other than letters, digits, ``.``, ``_`` and ``-`` (spaces, brackets, quotes, ``/``) one ``-``, none at
    either end (a leading ``-`` reads as a flag, a leading ``.`` hides it); ``""`` when nothing is left. A name that
    had to change ends with six hex digits of its hash, so that two names are two folders (``my data.csv`` and
    ``my-data.csv`` were one, and the second run was refused a folder holding the first's); one word stays as it is.

    >>> folder_part("my reviews.csv"), folder_part("my-reviews.csv"), folder_part("données")
    ('my-reviews.csv-d5f323', 'my-reviews.csv', 'données')

    ``hashed=False``: the name as it was before the hash (:func:`resumed_default`, a run started under it).
    """
    import hashlib

    text = str(text)
    word = re.sub(r"[^\w.-]+", "-", text).strip("-.")
    if word == text or not hashed:
        return word
    return "-".join(filter(None, (word, hashlib.sha256(text.encode(errors="surrogateescape")).hexdigest()[:6])))


def resumed_default(folder: Callable[[bool], Path], resume: bool) -> Path:
    """The default folder ``folder(True)``; under ``resume``, the one of its former name ``folder(False)`` (before a name
    that had to change for a folder ended with a hash, :func:`folder_part`) where only that one exists: the run or
    comparison started there, under the name tunelab then gave it, continues there, not afresh in a new folder."""
    new = folder(True)
    if not resume or new.exists():
        return new
    former = folder(False)
    if former != new and former.is_dir() and any(former.iterdir()):
        import logging

        logging.getLogger("tunelab").warning(f"{setting('resume', True)}: continuing in {former}, the default folder's "
                                             f"name before it ended with a hash (today's is {new})")
        return former
    return new


def check_folder(path: str | Path, option: str = "out") -> None:
    """Raise :class:`~tunelab.errors.TunelabError` (one line naming the setting ``option`` as the caller spells it,
    :func:`~tunelab.errors.setting`) when :func:`folder_problem` finds one."""
    problem = folder_problem(path)
    if problem:
        shown = os.fsdecode(os.fsencode(path)).encode("utf-8", "backslashreplace").decode()  # not UTF-8: escaped
        raise TunelabError(f"{setting(option, shown)}: {problem}; choose another {setting(option)}")


def make_folder(path: str | Path, option: str = "out") -> Path:
    """Create the folder ``path`` (and its parents); a failure is one line naming the setting ``option``, what is in the way
    and what to do (:class:`~tunelab.errors.TunelabError`)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = folder_problem(path) or err.strerror or type(err).__name__
        raise TunelabError(f"{setting(option, str(path))}: cannot create the folder ({reason}); choose another "
                           f"{setting(option)}") from err
    return path


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk (before the folder is renamed into place)."""
    for p in Path(folder).rglob("*"):
        if p.is_file():
            with open(p, "rb") as handle:
                os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s own entry list, so that a rename into it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TMP = ".tmp-"
"""The start of a temporary's name beside its target (:func:`atomic_dir`'s folders, a checkpoint's staging): one that a
kill left is removed by the next run that owns the place (:func:`remove_leftovers`)."""

GONE = f"{TMP}gone-"
"""The start of a folder's name while :func:`remove_tree` deletes it (a ``.tmp-`` name: the next run removes it)."""


def remove_tree(path: str | Path) -> None:
    """Delete the folder (or file) ``path`` so that no reader ever sees part of it: a folder is renamed aside
    first (``.tmp-gone-<name>-...``, at once), then deleted. Deleted in place, a kill half-way left a checkpoint
    that kept its completion marker without its weights, or a run's ``model/`` half gone beside its record."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        if path.is_symlink() or path.exists():
            path.unlink(missing_ok=True)
        return
    aside = Path(tempfile.mkdtemp(prefix=f"{GONE}{path.name}-", dir=path.parent))
    try:
        os.replace(path, aside)  # onto the empty folder just made: one rename
    except OSError:
        aside.rmdir()
        aside = path  # another process renamed or removed it first, or this system cannot: deleted where it is
    try:
        shutil.rmtree(aside, ignore_errors=True)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM, taken as one) half-way: the folder is already gone from its place, so the delete is
        # finished first. A run deletes its checkpoints once its record is written, and an interrupt there (a
        # comparison's budget, Ctrl-C) left a .tmp-gone- folder in the finished run's folder, which nothing reopens
        shutil.rmtree(aside, ignore_errors=True)
        raise


def remove_leftovers(folder: str | Path, prefix: str = GONE, *, below: bool = True) -> None:
    """Remove the files and folders whose name starts with ``prefix`` in ``folder`` and, with ``below``, in any folder
    below it. By default what a :func:`remove_tree` killed half-way (SIGKILL) left anywhere under ``folder``: a
    comparison's finished runs are reused as they are, and their own folders are never prepared again. With
    ``prefix=TMP, below=False``: every temporary a kill left in a run's own folder, which the next run there (or the
    failed run itself) removes. What cannot be removed (a read-only folder) stays, silently: the caller's own error
    is the one to tell."""
    for root, dirs, files in os.walk(folder):
        for name in [*files, *dirs]:
            if name.startswith(prefix):
                remove_quietly(Path(root, name))
        if not below:
            break
        dirs[:] = [d for d in dirs if not d.startswith(prefix)]


def remove_quietly(path: str | Path) -> None:
    """Delete the folder or file ``path`` (a link itself, never what it points to) as far as it can be deleted."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def shared_mode(mode: int) -> int:
    """``mode`` under the process's umask: what ``open`` / ``mkdir`` would have given a file (``0o666``) or a folder
    (``0o777``). ``tempfile`` makes its files 0600 and folders 0700, private to their owner: a run's ``model/``, its
    checkpoints and the shared cache, written through a temporary beside them, were unreadable to the rest of a team."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path``: into a temporary file beside it, flushed, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, shared_mode(0o666))  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (:func:`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def stored_arrays(path: str | Path | None, compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The numpy arrays stored in ``path`` (an ``.npz``) and True; or, when there is none (or it cannot be read),
    ``compute()``'s, written there atomically, and False. ``path`` None: computed, never stored. The store of
    tunelab's measurement caches (a base model's losses, frozen features), keyed by their callers."""
    import io

    import numpy as np

    if path is not None and Path(path).is_file():
        try:
            with np.load(path) as stored:
                return {k: stored[k] for k in stored.files}, True
        except (OSError, ValueError, KeyError, EOFError):  # broken (a full disk, another version): measured again
            pass
    arrays = compute()
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())
    return arrays, False


@contextlib.contextmanager
def atomic_dir(
    target: str | Path,
    *,
    marker: bool = True,
    prefix: str | None = None,
    replace: bool = True,
    fsync: bool = True,
) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block ends without an error, put
    the completion :data:`MARKER` in it (``marker=True``), flush every file and rename it to ``target``.

    On an error the temporary folder is removed and ``target`` is left as it was. ``replace=True``
    swaps out an existing ``target`` (moved aside, then deleted); ``replace=False`` keeps one another
    process completed first (a shared cache) and drops this copy. ``fsync=False`` skips flushing the
    files first (for large content that can be recomputed: the rename is still atomic for processes).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f"{TMP}{target.name}-", dir=target.parent))
    os.chmod(tmp, shared_mode(0o777))  # as mkdir would have made it, not mkdtemp's 0700
    try:
        yield tmp
        if marker:
            (tmp / MARKER).write_text("complete\n")
        if fsync:
            fsync_tree(tmp)
        _rename_into_place(tmp, target, replace=replace)
        if fsync:
            fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _rename_into_place(tmp: Path, target: Path, *, replace: bool) -> None:
    if not target.exists():
        try:
            os.replace(tmp, target)
            return
        except OSError:  # another process created it in the meantime
            if not replace:
                return
    if not replace:
        return  # keep the one already there; ``tmp`` is removed by the caller
    old = target.with_name(f"{TMP}old-{target.name}-{os.getpid()}")
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
