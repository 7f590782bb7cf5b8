"""What per-text attention in packed causal-LM blocks costs a training step (``--document-mask``, the default).

Loads the packaged ``smollm2`` once per strategy through tunelab's ``prepare`` and times forward + backward of the
same batches of packed rotten-tomatoes snippets (about four texts a 128-token block) with the per-text collator
(position ids, no mask: transformers builds a block-diagonal causal mask) and with the one before it (an all-ones
mask: a plain causal mask), interleaved A/B/B/A so that the shared machine's load falls on both alike.

    PYTHONPATH=src python benchmarks/document_mask.py --steps 8 --repeats 2     # on an idle machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="lora,full")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per setting and repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--no-perplexity", dest="perplexity", action="store_false",
                        help="skip scoring smollm2 as loaded on the validation blocks both ways")
    args = parser.parse_args()
    if args.steps * args.repeats < 2:
        parser.error(f"--steps {args.steps} x --repeats {args.repeats} times one step, the warm-up the medians leave out: "
                     "give at least 2 steps in all")

    from tunelab.config import TrainConfig
    from tunelab.run.padding import task_collator
    from tunelab.run.training import prepare

    print(f"torch threads {torch.get_num_threads()}", flush=True)
    for strategy in args.strategies.split(","):
        config = TrainConfig(model="smollm2", data="rotten-tomatoes", task="causal-lm", strategy=strategy,
                             max_length=args.max_length, max_train_samples=2000, forgetting=False)
        run = prepare(config)
        assert run.document_mask, run.warnings
        ds = run.tokenized["train"]
        texts = len(set(ds["text_index"]))
        print(f"{strategy}: {len(ds)} blocks of {args.max_length} tokens ({texts} texts start one)", flush=True)
        collate = {on: task_collator(run.tokenizer, "causal-lm", run.max_length, on) for on in (True, False)}
        model = run.model
        model.train()
        times: dict[bool, list[float]] = {True: [], False: []}
        step = 0
        for _ in range(args.repeats):
            for i in range(args.steps):
                rows = [ds[(step * args.batch_size + j) % len(ds)] for j in range(args.batch_size)]
                step += 1
                for on in ((True, False) if i % 2 == 0 else (False, True)):
                    batch = collate[on](rows)
                    start = time.perf_counter()
                    model(**batch).loss.backward()
                    times[on].append(time.perf_counter() - start)
                    model.zero_grad(set_to_none=True)
        on, off = statistics.median(times[True][1:]), statistics.median(times[False][1:])  # the first warms up
        ratios = [a / b for a, b in zip(times[True][1:], times[False][1:])]
        print(f"{strategy}: step (forward + backward, {args.batch_size} x {args.max_length}) median per-text "
              f"{on:.3f} s, cross-text {off:.3f} s, ratio of medians {on / off:.3f}, median paired ratio "
              f"{statistics.median(ratios):.3f} (n={len(ratios)})", flush=True)
        del run, model
    if args.perplexity:
        perplexity(args.max_length)


def perplexity(max_length: int) -> None:
    """smollm2 as loaded, scored on rotten-tomatoes' validation blocks read per text and across texts."""
    import math

    from tunelab.config import TrainConfig
    from tunelab.metrics import IGNORE_INDEX
    from tunelab.run.padding import task_collator
    from tunelab.run.training import prepare

    run = prepare(TrainConfig(model="smollm2", data="rotten-tomatoes", task="causal-lm", strategy="full",
                              max_length=max_length, max_train_samples=200, forgetting=False))
    ds, model = run.tokenized["validation"], run.model.eval()
    for on in (True, False):
        collate = task_collator(run.tokenizer, "causal-lm", run.max_length, on)
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(ds), 8):
                batch = collate([ds[j] for j in range(i, min(i + 8, len(ds)))])
                k = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
                total += float(model(**batch, use_cache=False).loss) * k
                n += k
        print(f"smollm2 as loaded, {'per-text' if on else 'cross-text'}: validation perplexity "
              f"{math.exp(total / n):.1f} over {n} target tokens", flush=True)


if __name__ == "__main__":
    main()
