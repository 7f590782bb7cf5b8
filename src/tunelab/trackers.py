"""The trackers a ``--report-to`` value names, checked: a setting of :class:`~tunelab.config.TrainConfig`, read here
below the config (which checks it) and the runs (which hand it to the Trainer, :mod:`tunelab.run.tracking`).

>>> parse_report_to("tensorboard")
['tensorboard']
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tunelab.errors import ConfigError, setting

NONE = "none"
# the Python module each common tracker needs, for an error that says what to install
_NEEDS = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny (or mlflow)", "wandb": "wandb", "comet_ml": "comet_ml"}


def tracker_names(text: str | None) -> list[str]:
    """The names a ``--report-to`` value lists, unchecked (``none`` or empty: none), each once (a name given twice made
    the Trainer add its callback twice, and every log reached that tracker twice)."""
    return list(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip() and n.strip() != NONE))


def parse_report_to(text: str | None) -> list[str]:
    """The tracker names in a ``--report-to`` value (``none`` or empty: no tracker); each checked
    against the Trainer's integrations and against what is installed."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    names = tracker_names(text)
    if "all" in names:  # every installed tracker, checked as when named (MLflow's store too: it failed in a traceback)
        names = list(dict.fromkeys(n for name in names
                                   for n in (get_available_reporting_integrations() if name == "all" else [name])))
    unknown = [n for n in names if n not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise ConfigError(
            f"{setting('report_to', ','.join(unknown))} is not a tracker the Trainer knows: use none, all or any of "
            f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}"
        )
    missing = [n for n in names if n not in get_available_reporting_integrations()]
    if missing:
        packages = " ".join(_NEEDS.get(n, n).split(" ")[0] for n in missing)
        raise ConfigError(f"{setting('report_to', ','.join(missing))}: not installed; run `pip install {packages}`")
    if "mlflow" in names:
        _check_mlflow_store()
    return names


#: Seconds the check of MLflow's tracking store waits for a server's answer.
STORE_PROBE_TIMEOUT_S = 10


def _check_mlflow_store() -> None:
    """MLflow's tracking store opens (its URI from ``MLFLOW_TRACKING_URI``, else MLflow's default), checked before a
    run starts: mlflow-skinny's default store is SQLite, which it cannot open, and a file store must be allowed
    (``MLFLOW_ALLOW_FILE_STORE``); either failed after the out folder was made, with a traceback."""
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        # one quick try: MLflow's own retries (7, with backoff) took over 4 minutes to give up on a server that is down
        with environment({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(STORE_PROBE_TIMEOUT_S)}):
            MlflowClient().search_experiments(max_results=1)
    except Exception as exc:  # mlflow raises its own kinds per store; any of them means no run can be logged
        why = " ".join(str(exc).split()) or type(exc).__name__
        if len(why) > 300:
            why = why[:300].rsplit(" ", 1)[0] + " …"
        uri = mlflow.get_tracking_uri()
        file_store = str(uri).startswith(("file:", "/", ".")) and not os.environ.get("MLFLOW_ALLOW_FILE_STORE")
        remedy = ("set MLFLOW_ALLOW_FILE_STORE=true to log to this folder, or " if file_store else "")
        raise ConfigError(f"{setting('report_to', 'mlflow')}: MLflow cannot open its tracking store {uri!r} ({why}); {remedy}set "
                          "MLFLOW_TRACKING_URI to a tracking server (http://HOST:PORT) or a store this MLflow "
                          f"installation supports, or leave mlflow out of {setting('report_to')}") from exc


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (the trackers read their settings there)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
