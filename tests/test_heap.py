"""The process-level helpers train() wraps a run in: the collector freeze and the heap trim."""

from __future__ import annotations

import gc
import os
import sys

import pytest

from tunelab.run.heap import release_free_heap
from tunelab.run.training import long_lived_objects_frozen


@pytest.fixture
def nothing_frozen():
    """These tests start from a process with nothing frozen. A test worker on a GPU machine once had 375 objects frozen
    by something that ran before (not traced: no test here freezes, and tunelab undoes its own freeze): hand those back
    first, as tunelab's own freeze would be skipped for a caller's."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_objects_from_before_the_run_are_frozen_during_it_and_handed_back_after(nothing_frozen):
    before = object()  # noqa: F841 - one more tracked object that exists before the run
    with long_lived_objects_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        created = [[] for _ in range(10)]  # created by the run: collected as usual, not frozen
        # frozen objects can still be freed by reference counting (here or in another thread), so the
        # count may drop; what must not happen is the run's own objects joining the frozen ones
        assert gc.get_freeze_count() <= frozen
        assert all(gc.is_tracked(x) for x in created)
    assert gc.get_freeze_count() == 0


def test_the_freeze_is_undone_when_the_run_fails(nothing_frozen):
    with pytest.raises(RuntimeError), long_lived_objects_frozen():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def test_a_callers_own_freeze_is_left_alone():
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        # frozen objects can still be freed (by other threads too, e.g. a Ray client left by an earlier test),
        # so the count may drop by a few; what must not happen is a second freeze or an unfreeze
        with long_lived_objects_frozen():
            assert count - 100 <= gc.get_freeze_count() <= count
        assert count - 100 <= gc.get_freeze_count() <= count  # not unfrozen by tunelab
    finally:
        gc.unfreeze()


def test_release_free_heap_trims_on_linux_glibc_and_is_a_no_op_elsewhere(monkeypatch):
    import tunelab.run.heap as heap

    glibc = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())
    assert release_free_heap() is glibc
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    try:
        assert release_free_heap() is False
    finally:
        heap._malloc_trim.cache_clear()


def test_onednn_primitive_cache_none_for_fp32_training_and_small_otherwise(monkeypatch):
    from tunelab.run.heap import limit_onednn_primitive_cache

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.delenv("TUNELAB_SET_ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert limit_onednn_primitive_cache("fp32") == "0"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "0"
    # a worker process that inherits tunelab's own setting chooses again for its precision
    assert limit_onednn_primitive_cache("bf16") == "64"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
    # head: nothing trains after the cache pass, which gains from oneDNN's default cache
    assert limit_onednn_primitive_cache("fp32", head_only=True) is None
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ


def test_a_users_own_onednn_setting_is_never_overridden(monkeypatch):
    from tunelab.run.heap import limit_onednn_primitive_cache

    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    monkeypatch.delenv("TUNELAB_SET_ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert limit_onednn_primitive_cache("fp32") == "512"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"


def test_peak_rss_is_the_processs_own_not_its_parents(tmp_path):
    """A child started from a big process reports its own peak (ru_maxrss would carry the parent's)."""
    import json
    import subprocess

    ballast = bytearray(400 * 2**20)  # the parent holds 400 MB more than the child will ever touch
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    code = "import json, sys; from tunelab.run.heap import peak_rss_mb; print(json.dumps(peak_rss_mb()))"
    child = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    from tunelab.run.heap import peak_rss_mb

    assert peak_rss_mb() > 400
    if sys.platform.startswith("linux"):
        assert child < peak_rss_mb() - 300
    del ballast
