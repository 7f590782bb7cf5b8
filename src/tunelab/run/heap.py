"""Hand freed heap memory back to the operating system (glibc's ``malloc_trim``).

glibc keeps memory that a process has freed inside its heap, so that it can be reused, and only
gives the top of the heap back to the system. The frozen-prefix cache build runs about 500 batches
of different shapes; afterwards about 36 MB of freed memory is still counted in the process's
resident size (minilm, ``last-n``, 2 CPU cores: 754 MB after the build, 718 MB after the trim), and
training would start on top of it. tunelab trims after the build and after training (before the
model is written). Not at every step: trimming between forward and backward at every step cut
``last-n``'s peak by about 150 MB but made training 18 % slower (each trim walks the whole heap,
and the pages it returns are faulted back in by the next step).
It does nothing where the C library is not glibc (macOS, musl, Windows).

The larger cause of a CPU run's heap growth is oneDNN's primitive cache. Every bfloat16 matrix multiply on
CPU goes through a oneDNN "primitive" built for its exact shapes and kept (by default up to 1,024 of
them) in a process-wide cache. The cache pass runs about 500 batches of different shapes, so it fills
that cache. Each entry is a long-lived allocation, left in the middle of the heap between the
activations that training frees at every step. The heap then grows around them, and the growth stays.
Measured on minilm ``last-n``, 3 epochs: at the end of training 281 MB of the heap was in use and 435 MB was
free but still resident. Peak RSS was 1,333 MB with the default cache, 1,247 MB with 64 entries and
1,101 MB with none. Training time did not change.
float32 training barely uses oneDNN: minilm LoRA trained in 17.1 s with no cache against 17.3 s with the
default, and its peak was 38 MB lower. bfloat16 training reuses the same shapes many times in every
step: with no cache, LoRA took 35 % longer (16.6 s against 12.3 s); with 64 entries it was within 4 %
(12.7 s) and its peak was 267 MB lower.
The cache pass itself does gain from the cache: batches of the same shape come back, and
minilm ``head``'s pass took 11-14 s with the default cache against 13-15 s with 16 entries or none.
For ``head`` no transformer block trains after the pass, so there is nothing to fragment.
:func:`limit_onednn_primitive_cache` therefore keeps the default when only the head trains. When blocks
train, it keeps no cache for float32 training and 64 entries otherwise. It only takes effect before the
process's first oneDNN call, through ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, and a value that the user set is
never overridden.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """Return the heap's free pages to the system; ``True`` if the C library could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


_ONEDNN_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
_SET_BY_TUNELAB = "TUNELAB_SET_ONEDNN_PRIMITIVE_CACHE_CAPACITY"  # so that a worker process may choose again
#: The variables :func:`limit_onednn_primitive_cache` sets; oneDNN reads its own at its first call, not at import
#: (so a process forked after torch's import still follows them: :mod:`tunelab.run.isolate`).
ENV_SET_BY_TUNELAB = (_ONEDNN_ENV, _SET_BY_TUNELAB)


def limit_onednn_primitive_cache(training_precision: str, *, head_only: bool = False) -> str | None:
    """Set oneDNN's primitive cache size for a run that trains in ``training_precision`` (and, with
    ``head_only``, trains no transformer block), before the process's first oneDNN call (see the
    module docstring); return the value in force, ``None`` for oneDNN's default."""
    current = os.environ.get(_ONEDNN_ENV)
    if current is not None and os.environ.get(_SET_BY_TUNELAB) != current:
        return current  # the user's own choice
    if head_only:
        os.environ.pop(_ONEDNN_ENV, None)
        os.environ.pop(_SET_BY_TUNELAB, None)
        return None
    value = "0" if training_precision == "fp32" else "64"
    os.environ[_ONEDNN_ENV] = os.environ[_SET_BY_TUNELAB] = value
    return value


_runs_in_this_process = 0


def start_run_peak() -> bool:
    """Call as a run starts: from the second run in the same process on (``train()`` called again in a notebook,
    ``compare(isolate=False)``), start the peak afresh, so that the run's peak memory is its own and not the largest
    of every run before it. CUDA's peak allocated is reset; on Linux the peak RSS (``VmHWM``) too, through
    ``/proc/self/clear_refs`` (it becomes the resident size now). A process's first run keeps the peak since the
    process started, as an isolated run always has. False where the peak could not be reset (then it still holds the
    runs before)."""
    global _runs_in_this_process
    _runs_in_this_process += 1
    if _runs_in_this_process == 1:
        return True
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size (Linux 4.0+)
    except OSError:
        return torch.cuda.is_available()  # the peak recorded is CUDA's, reset above; RSS's cannot be
    return True


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    On Linux it is read from ``/proc/self/status`` (``VmHWM``): ``getrusage``'s ``ru_maxrss`` carries the
    parent's resident size across fork and exec, so a run started from a large process (a test
    session, a notebook) would report the parent's peak instead of its own. Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    scale = 2**20 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


_PAGEMAP_PRESENT = 1 << 63


def _file_mappings(pid: int) -> list[tuple[int, int]]:
    """``(start, end)`` of ``pid``'s mappings of regular files (libraries, memory-mapped data; not devices, not
    anonymous memory, which a fork copies)."""
    spans = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or fields[4] == "0" or not fields[5].startswith("/") or fields[5].startswith("/dev/"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            spans.append((start, end))
    return spans


def adopt_resident_file_pages(parent: int) -> float:
    """In a process just forked from ``parent``: make resident here the pages of files (the libraries' code and
    read-only data) that are resident in ``parent``; return their MiB.

    A fork copies the parent's anonymous memory into the child's resident set, but not its file-backed pages: the
    child maps them again only as it touches them. A job forked from the warm server (:mod:`tunelab.run.isolate`)
    therefore started about 140 MB (torch, transformers; 2 CPU cores) below a fresh process that imported the same
    libraries, and its peak RSS stayed below the one ``tunelab train`` records for the same run (the estimate's
    minilm peak 8-22 % under train's). Touching the same pages here makes the job's resident set what a fresh
    process's is after the same imports, so a peak has one meaning whichever way the process started. Reads
    ``/proc/PARENT/pagemap`` (which pages are present) and ``/proc/self/mem`` (a read maps the page in); returns 0
    where either cannot be read (not Linux, a restricted /proc)."""
    import numpy as np

    page = os.sysconf("SC_PAGE_SIZE")
    adopted = 0
    try:
        spans = _file_mappings(parent)
        pagemap = os.open(f"/proc/{parent}/pagemap", os.O_RDONLY)
        mem = os.open("/proc/self/mem", os.O_RDONLY)
    except OSError:
        return 0.0
    byte = [bytearray(1)]  # one byte of a page is enough to map it
    try:
        for start, end in spans:
            try:
                entries = np.frombuffer(os.pread(pagemap, (end - start) // page * 8, start // page * 8), dtype=np.uint64)
            except OSError:
                continue
            present = np.flatnonzero(entries & np.uint64(_PAGEMAP_PRESENT))
            for index in present.tolist():
                try:
                    os.preadv(mem, byte, start + index * page)
                    adopted += 1
                except OSError:  # a mapping this process no longer has, or one that cannot be read
                    pass
    finally:
        os.close(pagemap)
        os.close(mem)
    return adopted * page / 2**20
