"""How far from "unrelated" each linear-CKA estimator reads unrelated representations, on an encoder's real ones.

An encoder's forgetting is 1 - linear CKA between its sentence representations (mean-pooled last hidden states) as
loaded and as adapted, of the reference texts (``tunelab.run.forgetting``). This reads the packaged ``minilm``'s
representations of the default reference (the seeded BBC sample, first 96 tokens, as a run reads it) and gives, for
each estimator (biased, debiased) and number of texts:

- unrelated: the representations paired with *other* texts' (rows shuffled; mean over ``--pairings`` shuffles):
  nothing in common, so an estimator without bias reads 1 - CKA about 1;
- related: the same texts through the same model with its encoder's weights perturbed (each weight plus Gaussian noise
  of ``--noise`` times that tensor's standard deviation, seeded), and read at an earlier layer (mean-pooled hidden
  states of layer ``--layer`` against the last): representations that share much, not all;
- each ``--runs`` folder's saved model (a ``tunelab train --model minilm`` run's ``model/``) against minilm as loaded:
  what the run's forgetting reads with each estimator.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/cka_bias.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,32,64", help="numbers of reference texts")
    parser.add_argument("--pairings", type=int, default=20, help="random shuffles for the unrelated pairing")
    parser.add_argument("--noise", default="0.05,0.2", help="weight-noise scales for the perturbed encoder")
    parser.add_argument("--layer", type=int, default=3, help="the earlier layer read against the last")
    parser.add_argument("--runs", nargs="*", default=[], help="run folders of minilm runs (their saved model/)")
    args = parser.parse_args()

    from transformers import AutoModel, AutoTokenizer

    from tunelab.data.reference import reference_texts
    from tunelab.models import resolve_model
    from tunelab.run.forgetting import (
        BIASED,
        DEBIASED,
        DEFAULT_MAX_LENGTH,
        linear_cka,
        sentence_representations,
    )

    path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    sizes = [int(n) for n in args.sizes.split(",")]
    texts = reference_texts(max(sizes), seed=0)  # the default reference's sample, its first n as a run of n reads it

    def model():
        return AutoModel.from_pretrained(path, dtype=torch.float32).eval()

    base = model()
    reps = sentence_representations(base, tokenizer, texts, DEFAULT_MAX_LENGTH)
    earlier = _layer_representations(base, tokenizer, texts, args.layer)
    perturbed = {}
    for scale in (float(s) for s in args.noise.split(",")):
        noisy = model()
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in noisy.encoder.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * scale * p.std().nan_to_num(0.0))
        perturbed[scale] = sentence_representations(noisy, tokenizer, texts, DEFAULT_MAX_LENGTH)

    print(f"minilm, default reference (bbc-text sample, seed 0), max length {DEFAULT_MAX_LENGTH}; 1 - CKA")
    print(f"{'pairing':<34}" + "".join(f"{f'n={n} {e}':>16}" for n in sizes for e in (BIASED, DEBIASED)))
    rng = np.random.default_rng(0)
    rows = {"unrelated (rows shuffled, mean)": lambda n, e: np.mean(
        [1 - linear_cka(reps[:n], reps[:n][rng.permutation(n)], e) for _ in range(args.pairings)])}
    for scale, other in perturbed.items():
        rows[f"encoder weights + {scale:g} sd noise"] = lambda n, e, other=other: 1 - linear_cka(reps[:n], other[:n], e)
    rows[f"layer {args.layer} vs last"] = lambda n, e: 1 - linear_cka(reps[:n], earlier[:n], e)
    for run in args.runs:
        from tunelab.run.artifacts import load_artifact
        from tunelab.run.forgetting import _body_of

        tuned = load_artifact(f"{run}/model")[0].float().eval()  # a peft adapter as well: its body reads through it
        other = sentence_representations(_body_of(tuned), tokenizer, texts, DEFAULT_MAX_LENGTH)
        rows[f"run {run}"] = lambda n, e, other=other: 1 - linear_cka(reps[:n], other[:n], e)
    for name, value in rows.items():
        print(f"{name:<34}" + "".join(f"{value(n, e):>16.3f}" for n in sizes for e in (BIASED, DEBIASED)), flush=True)


@torch.inference_mode()
def _layer_representations(body, tokenizer, texts: list[str], layer: int) -> np.ndarray:
    """Mean-pooled hidden states after ``layer`` (cut and padded as the forgetting measure reads the texts)."""
    from tunelab.run.forgetting import DEFAULT_MAX_LENGTH, _batches

    rows = []
    for ids, mask in _batches(tokenizer, texts, DEFAULT_MAX_LENGTH):
        hidden = body(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        rows.append(((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().numpy())
    return np.concatenate(rows)


if __name__ == "__main__":
    main()
