"""Write a classification CSV from data outside the verdict benchmark: ``chatterbot-corpus`` questions by topic.

    .venv/bin/python benchmarks/chatterbot_topics.py topics.csv     # question,topic; the topics of >= 60 questions

The first utterance of each conversation in ``chatterbot_corpus/data/english/*.yml`` (a package asset, see
../shared/ASSETS.md) is the text and the file's name the label; topics with fewer than ``--min-rows`` questions are
left out (five remain: ai, coding, psychology, tech_support, trivia; 1,663 rows). Used in benchmarks/README, session 27,
for one planned / exhaustive pair on data the planner was not designed on.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from collections import Counter
from pathlib import Path


def rows() -> list[tuple[str, str]]:
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("chatterbot_topics.py: the package chatterbot-corpus is not installed; "
                         "pip install --no-deps chatterbot-corpus==1.3.3")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "english"
    out = []
    for path in sorted(folder.glob("*.yml")):
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations") or []:
            if conversation and isinstance(conversation[0], str):
                out.append((conversation[0], path.stem))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--min-rows", type=int, default=60, help="keep the topics with at least this many questions")
    args = parser.parse_args(argv)
    data = rows()
    counts = Counter(topic for _, topic in data)
    kept = [(q, t) for q, t in data if counts[t] >= args.min_rows]
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "topic"])
        writer.writerows(kept)
    print(f"{args.out}: {len(kept)} rows, topics {sorted({t for _, t in kept})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
