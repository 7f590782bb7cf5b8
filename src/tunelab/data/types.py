"""The one shape every data source is turned into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import datasets

Task = Literal["classification", "causal-lm"]


@dataclass
class TaskData:
    """A task's data, split three ways.

    Classification splits have columns ``text`` (str) and ``label`` (int, an index into
    ``label_names``), and ``text_pair`` (str) when each example is a pair of texts (``--text-column a,b``: NLI,
    paraphrase, a question and a passage), which the tokenizer encodes as a pair. Causal-LM splits have ``text`` (str); chat or instruction data also keeps
    ``messages`` (a list of ``{"role", "content"}`` dicts) so the tokenizer's chat template can
    render it, and ``text`` holds a plain rendering for tokenizers without one.
    """

    task: Task
    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset
    label_names: list[str] = field(default_factory=list)
    source: str = ""
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)
    split_fingerprint: str = ""
    """:attr:`fingerprint` of the data as split, before a run cut its training split (``--max-train-samples``,
    ``--data-fraction``): what a comparison, which reads its data whole, checks a finished run against."""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def text_pairs(self) -> bool:
        """Whether each example is a pair of texts (a ``text_pair`` column)."""
        return "text_pair" in self.train.column_names

    @property
    def conversations(self) -> bool:
        """Whether each example is a conversation (a causal LM's ``messages`` column), not plain text."""
        return self.task == "causal-lm" and "messages" in self.train.column_names

    def splits(self) -> dict[str, datasets.Dataset]:
        return {"train": self.train, "validation": self.validation, "test": self.test}
