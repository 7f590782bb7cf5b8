"""tunelab's data layer: built-in datasets and user files into validated, split :class:`TaskData`.

>>> from tunelab.data import load_task_data, list_datasets  # doctest: +SKIP
>>> data = load_task_data("reviews.csv", text_column="review", label_column="stars")  # doctest: +SKIP
>>> data.label_names, data.splits()["test"].num_rows  # doctest: +SKIP
"""

from __future__ import annotations

from tunelab.data.builtin import BUILTIN_DATASETS
from tunelab.data.load import TASKS, list_datasets, load_task_data, subsample_train
from tunelab.data.readers import SUPPORTED_EXTENSIONS
from tunelab.data.types import Task, TaskData

__all__ = [
    "BUILTIN_DATASETS",
    "SUPPORTED_EXTENSIONS",
    "TASKS",
    "Task",
    "TaskData",
    "list_datasets",
    "load_task_data",
    "subsample_train",
]
