"""Write ChatterBot's English questions, labelled by topic, as a CSV: a 21-class, imbalanced data set with many
repeated texts, from outside tunelab's built-ins (the ``chatterbot-corpus`` package that ``make setup`` installs).

    .venv/bin/python scripts/chatterbot_topics.py /tmp/topics.csv
    tunelab compare --model minilm --data /tmp/topics.csv --text-column question --label-column topic --epochs 2
    .venv/bin/python scripts/chatterbot_topics.py topics.csv --min-rows 60   # the five topics of >= 60 questions

Each conversation's first turn is the question, its file's name the topic (2,026 rows: tech_support 1,050 ...
health 1; 1,277 rows repeat an earlier question exactly, 3 questions under two topics). ``--min-rows N`` keeps the
topics with at least N questions (60: ai, coding, psychology, tech_support, trivia; 1,663 rows, the data of
benchmarks/README's session-27 pair of a planned and an exhaustive comparison).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from collections import Counter
from pathlib import Path

import yaml


def main(out: str, min_rows: int = 0) -> int:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        print("chatterbot-corpus is not installed: run make setup", file=sys.stderr)
        return 2
    folder = Path(spec.submodule_search_locations[0]) / "data" / "english"
    rows = []
    for file in sorted(folder.glob("*.yml")):
        for turns in (yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("conversations") or []:
            if turns and isinstance(turns[0], str) and turns[0].strip():
                rows.append((turns[0], file.stem))
    counts = Counter(topic for _, topic in rows)
    rows = [(question, topic) for question, topic in rows if counts[topic] >= min_rows]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "topic"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="topics.csv")
    parser.add_argument("--min-rows", type=int, default=0, help="keep the topics with at least this many questions")
    args = parser.parse_args()
    sys.exit(main(args.out, args.min_rows))
