"""Files that are never half-written: write beside the target, flush, rename into place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# written last into a folder that is complete (a checkpoint, an artifact): a folder without it is partial
MARKER = ".tunelab-complete"


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk (before the folder is renamed into place)."""
    for p in Path(folder).rglob("*"):
        if p.is_file():
            with open(p, "rb") as handle:
                os.fsync(handle.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
