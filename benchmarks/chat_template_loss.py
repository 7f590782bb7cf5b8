"""Where smollm2's per-token loss on chat-templated conversations goes, against the same conversations' plain text.

Read-only: loads the packaged ``smollm2`` as tunelab does (``load_model``), checks that its chat markers encode as
single special ids (``<|im_start|>`` / ``<|im_end|>``, with and without ``add_special_tokens``), then scores a
seeded sample of the built-in ``chat-qa`` conversations (no training), each alone from position 0: as plain text
(the messages' words, one a line) and through the chat template as tunelab tokenizes it (``conversation_text``,
``add_special_tokens=False``), the latter split by what each predicted token is (the template's system prompt,
user words, assistant words, markers, role names and newlines).

    PYTHONPATH=src python benchmarks/chat_template_loss.py --conversations 60
"""

from __future__ import annotations

import argparse
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=60, help="chat-qa conversations scored (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.conversations < 1:
        parser.error(f"--conversations {args.conversations}: give at least 1")

    import torch

    from tunelab.data.builtin import read_builtin
    from tunelab.data.chat import conversation_text, words
    from tunelab.models import load_model

    model, tok = load_model("smollm2", task="causal-lm")
    model.eval()
    markers = ("<|im_start|>", "<|im_end|>")
    special = {t.content: i for i, t in tok.added_tokens_decoder.items() if t.special}
    probe = "<|im_start|>user\nhi<|im_end|>"
    for add in (True, False):
        print(f"tokenizer({probe!r}, add_special_tokens={add}): {tok(probe, add_special_tokens=add)['input_ids']}")
    print("special added tokens:", {m: special.get(m) for m in markers}, "bos", tok.bos_token, "eos", tok.eos_token)

    convs = next(iter(read_builtin("chat-qa").tables.values())).columns["messages"]
    sample = random.Random(args.seed).sample(range(len(convs)), min(args.conversations, len(convs)))
    totals: dict[str, list[float]] = {}

    def score(text: str) -> list[tuple[int, int, int, float]]:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        losses = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none").tolist()
        return [(s, e, i, loss) for (s, e), i, loss in zip(enc["offset_mapping"][1:], ids[1:], losses)]

    def add(name: str, loss: float) -> None:
        totals.setdefault(name, [0.0, 0])
        totals[name][0] += loss
        totals[name][1] += 1

    for row in sample:
        messages = convs[row]
        plain, replies, at = words(messages), [], 0
        for m in messages:  # the assistant's words in the plain text, to set against the same words in the template
            at = plain.find(m["content"], at)
            replies += [(at, at + len(m["content"]))] if m["role"] == "assistant" else []
            at += len(m["content"])
        for s, e, _, loss in score(plain):
            add("plain text: all tokens", loss)
            if any(s < end and e > start for start, end in replies):
                add("plain text: assistant words", loss)
        text = conversation_text(tok, messages)
        kind = ["markup (role names, newlines)"] * len(text)
        at = 0
        if text.startswith("<|im_start|>system\n") and not any(m["role"] == "system" for m in messages):
            at = text.find("<|im_end|>")
            kind[len("<|im_start|>system\n"):at] = ["template's system prompt"] * (at - len("<|im_start|>system\n"))
        for m in messages:
            at = text.find(m["content"], at)
            kind[at:at + len(m["content"])] = [f"{m['role']} words"] * len(m["content"])
            at += len(m["content"])
        for s, e, token_id, loss in score(text):
            add("template: all tokens", loss)
            marker = tok.convert_ids_to_tokens(token_id)
            add(f"  {marker} token" if marker in markers else f"  {kind[s] if e > s else 'markup (role names, newlines)'}",
                loss)
    whole = totals["template: all tokens"][0]
    print(f"\n{len(sample)} chat-qa conversations (seed {args.seed}), smollm2 as loaded, nats per predicted token:")
    for name, (loss, n) in sorted(totals.items(), key=lambda kv: (kv[0].startswith(" "), -kv[1][0])):
        share = f"  {loss / whole:5.1%} of the template's loss" if name.startswith(" ") else ""
        print(f"{name:42s} {loss / n:6.3f} over {n:5d} tokens{share}")


if __name__ == "__main__":
    main()
