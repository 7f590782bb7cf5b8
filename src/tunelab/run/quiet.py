"""Quiet libraries: transformers' and datasets' own progress bars off inside a block. Apart from
:mod:`tunelab.run.progress` (which imports the Trainer's callbacks, and with them peft: seconds) so that the advice
before training, which trains nothing, can use it without that import."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def library_bars_off():
    """Inside the block transformers' and datasets' own tqdm bars (loading weights, tokenizing, writing
    shards) stay quiet: the run's display says what phase it is in. Restored afterwards."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_was, ds_was = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if hf_was:
            hf_logging.enable_progress_bar()
        if ds_was:
            datasets.enable_progress_bars()
