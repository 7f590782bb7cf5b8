"""Every strategy on tiny random models of 43 transformers architectures, through ``train()`` (README, "Any
transformers architecture": the second sweep). One line per (architecture, task, strategy): ``ok trainable/total``
or ``ERR`` with the one-line error and where it was raised; a JSON summary goes to ``$OUT`` (default
``arch_probe.json``). Usage: ``.venv/bin/python scripts/arch_probe.py [ARCH ...] [--STRATEGY ...]``; about 5 minutes
on 2 cores."""
import json
import os
import random
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny tokenizer of the test suite
import torch  # noqa: E402 - after the tests folder joins sys.path
import transformers as T  # noqa: E402
from datasets import Dataset

import tunelab  # noqa: F401, E402
import tunelab.run.training as training
from conftest import _NEGATIVE, _POSITIVE, _sentence, tiny_tokenizer
from tunelab.config import TrainConfig
from tunelab.data import TaskData

tok = tiny_tokenizer()
V, P = tok.vocab_size, tok.pad_token_id
D = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
C = dict(vocab_size=V, pad_token_id=P, max_position_embeddings=64)
DEC = dict(bos_token_id=2, eos_token_id=3)
ENC = {
 "electra": (T.ElectraConfig(**C, **D, embedding_size=32), "ElectraModel"),
 "albert": (T.AlbertConfig(**C, **D, embedding_size=16), "AlbertModel"),
 "xlm-roberta": (T.XLMRobertaConfig(**C, **D), "XLMRobertaModel"),
 "camembert": (T.CamembertConfig(**C, **D), "CamembertModel"),
 "ernie": (T.ErnieConfig(**C, **D), "ErnieModel"),
 "roformer": (T.RoFormerConfig(**C, **D, embedding_size=32), "RoFormerModel"),
 "mobilebert": (T.MobileBertConfig(**C, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, embedding_size=16, intra_bottleneck_size=16, true_hidden_size=16, num_feedforward_networks=1), "MobileBertModel"),
 "squeezebert": (T.SqueezeBertConfig(**C, **D, embedding_size=32, q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1, intermediate_groups=1, output_groups=1), "SqueezeBertModel"),
 "convbert": (T.ConvBertConfig(**C, **D, embedding_size=32), "ConvBertModel"),
 "deberta": (T.DebertaConfig(**C, **D), "DebertaModel"),
 "data2vec-text": (T.Data2VecTextConfig(**C, **D), "Data2VecTextModel"),
 "bigbird": (T.BigBirdConfig(**C, **D, attention_type="original_full"), "BigBirdModel"),
 "nystromformer": (T.NystromformerConfig(**C, **D, num_landmarks=4, segment_means_seq_len=16), "NystromformerModel"),
 "xlm-roberta-xl": (T.XLMRobertaXLConfig(**C, **D), "XLMRobertaXLModel"),
 "roberta-prelayernorm": (T.RobertaPreLayerNormConfig(**C, **D), "RobertaPreLayerNormModel"),
 "megatron-bert": (T.MegatronBertConfig(**C, **D), "MegatronBertModel"),
 "longformer": (T.LongformerConfig(**C, **D, attention_window=4), "LongformerModel"),
 "funnel": (T.FunnelConfig(vocab_size=V, pad_token_id=P, block_sizes=[1,1], d_model=32, n_head=4, d_head=8, d_inner=64), "FunnelModel"),
 "bart": (T.BartConfig(vocab_size=V, pad_token_id=P, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2), "BartModel"),
 "t5": (T.T5Config(vocab_size=V, pad_token_id=P, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, eos_token_id=3, decoder_start_token_id=P), "T5Model"),
}
DECS = {
 "gpt-neox": (T.GPTNeoXConfig(**C, **D, **DEC), "GPTNeoXForCausalLM"),
 "gptj": (T.GPTJConfig(vocab_size=V, pad_token_id=P, n_positions=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, **DEC), "GPTJForCausalLM"),
 "gpt-neo": (T.GPTNeoConfig(vocab_size=V, pad_token_id=P, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global","local"],1]], window_size=8, **DEC), "GPTNeoForCausalLM"),
 "opt": (T.OPTConfig(vocab_size=V, pad_token_id=P, max_position_embeddings=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32, **DEC), "OPTForCausalLM"),
 "bloom": (T.BloomConfig(vocab_size=V, pad_token_id=P, hidden_size=32, n_layer=2, n_head=4, **DEC), "BloomForCausalLM"),
 "falcon": (T.FalconConfig(vocab_size=V, pad_token_id=P, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, **DEC), "FalconForCausalLM"),
 "mistral": (T.MistralConfig(**C, **D, **DEC, num_key_value_heads=2), "MistralForCausalLM"),
 "mixtral": (T.MixtralConfig(**C, **D, **DEC, num_key_value_heads=2, num_local_experts=2, num_experts_per_tok=1), "MixtralForCausalLM"),
 "qwen3": (T.Qwen3Config(**C, **D, **DEC, num_key_value_heads=2, head_dim=8), "Qwen3ForCausalLM"),
 "qwen3-moe": (T.Qwen3MoeConfig(**C, **D, **DEC, num_key_value_heads=2, head_dim=8, num_experts=2, num_experts_per_tok=1, moe_intermediate_size=16), "Qwen3MoeForCausalLM"),
 "gemma": (T.GemmaConfig(**C, **D, **DEC, num_key_value_heads=2, head_dim=8), "GemmaForCausalLM"),
 "gemma2": (T.Gemma2Config(**C, **D, **DEC, num_key_value_heads=2, head_dim=8, sliding_window=8), "Gemma2ForCausalLM"),
 "phi": (T.PhiConfig(**C, **D, **DEC), "PhiForCausalLM"),
 "stablelm": (T.StableLmConfig(**C, **D, **DEC, num_key_value_heads=2), "StableLmForCausalLM"),
 "olmo": (T.OlmoConfig(**C, **D, **DEC), "OlmoForCausalLM"),
 "olmo2": (T.Olmo2Config(**C, **D, **DEC), "Olmo2ForCausalLM"),
 "cohere": (T.CohereConfig(**C, **D, **DEC, num_key_value_heads=2), "CohereForCausalLM"),
 "starcoder2": (T.Starcoder2Config(**C, **D, **DEC, num_key_value_heads=2), "Starcoder2ForCausalLM"),
 "gpt-bigcode": (T.GPTBigCodeConfig(vocab_size=V, pad_token_id=P, n_positions=64, n_embd=32, n_layer=2, n_head=4, **DEC), "GPTBigCodeForCausalLM"),
 "codegen": (T.CodeGenConfig(vocab_size=V, pad_token_id=P, n_positions=64, n_ctx=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, **DEC), "CodeGenForCausalLM"),
 "granite": (T.GraniteConfig(**C, **D, **DEC, num_key_value_heads=2), "GraniteForCausalLM"),
 "smollm3": (T.SmolLM3Config(**C, **D, **DEC, num_key_value_heads=2), "SmolLM3ForCausalLM"),
 "mpt": (T.MptConfig(vocab_size=V, pad_token_id=P, d_model=32, n_heads=4, n_layers=2, max_seq_len=64, expansion_ratio=2, **DEC), "MptForCausalLM"),
}

rng = random.Random(0)


def split(n: int, task: str) -> Dataset:
    labels = [i % 2 for i in range(n)]
    texts = [_sentence(rng, _POSITIVE if y else _NEGATIVE) for y in labels]
    return Dataset.from_dict({"text": texts, "label": labels} if task == "classification" else {"text": texts})


def data(task: str) -> TaskData:
    labels = {"label_names": ["neg", "pos"]} if task == "classification" else {}
    return TaskData(task=task, train=split(16, task), validation=split(8, task), test=split(8, task), source="toy",
                    fingerprint=f"toy-{task}", **labels)


def main() -> None:
    datas = {t: data(t) for t in ("classification", "causal-lm")}
    only = {a for a in sys.argv[1:] if not a.startswith("--")}
    chosen = [a[2:] for a in sys.argv[1:] if a.startswith("--")]
    root = Path(tempfile.mkdtemp())
    results: dict[str, dict[str, str]] = {}
    for name, (cfg, cls) in {**ENC, **DECS}.items():
        if only and name not in only:
            continue
        folder = root / name
        try:
            torch.manual_seed(0)
            getattr(T, cls)(cfg).save_pretrained(folder)
            tokenizer = tiny_tokenizer()
            if name in DECS:
                tokenizer.eos_token = "[SEP]"
            tokenizer.save_pretrained(folder)
        except Exception as exc:  # noqa: BLE001 - reported, the sweep goes on
            results[name] = {"build": f"{type(exc).__name__}: {str(exc)[:200]}"}
            print(name, "BUILD", results[name], flush=True)
            continue
        tasks = [("classification", s) for s in ("head", "last-n", "lora", "ia3", "bitfit", "full", "gradual", "prompt-tuning")]
        if name in DECS:
            tasks += [("causal-lm", s) for s in ("last-n", "lora", "ia3", "full")]
        for task, strategy in [t for t in tasks if not chosen or t[1] in chosen]:
            out = root / f"out-{name}-{task}-{strategy}"
            try:
                config = TrainConfig(model=str(folder), strategy=strategy, epochs=1, batch_size=8, max_length=16, layers=1,
                                     num_virtual_tokens=4, out=str(out), overwrite=True, cache_dir=str(root / "cache"),
                                     cache_precision="fp32")
                info = training.train(config, data=datas[task], progress=False)["train_info"]
                line = f"ok {info['trainable_params']}/{info['total_params']} cache={info.get('cache', {}).get('used')}"
            except Exception as exc:  # noqa: BLE001 - reported, the sweep goes on
                where = traceback.extract_tb(exc.__traceback__)[-1]
                line = f"ERR {type(exc).__name__}: {str(exc)[:300]} @ {Path(where.filename).name}:{where.lineno}"
            results.setdefault(name, {})[f"{task}:{strategy}"] = line
            print(name, task, strategy, line, flush=True)
            shutil.rmtree(out, ignore_errors=True)
    Path(os.environ.get("OUT", "arch_probe.json")).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
