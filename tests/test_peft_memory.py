"""What PEFT costs and the options users of peft and the Trainer expect: the LoRA dropout default, DoRA and
rsLoRA reaching peft (and reloading in plain peft), gradient checkpointing (same losses as without), the frozen
base in bfloat16, and their bad values refused with one line (exit code 2)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

import tunelab.run.artifacts
from conftest import assert_same_logits
from tunelab import TrainConfig
from tunelab.cli.main import main
from tunelab.run.cache import native_bf16
from tunelab.run.training import train

TEXTS = ["the film was really good and moving", "a dull , boring and painful story"]


def _train(base: Path, data, out: Path, **options):
    """Train on the toy data; return the record and the trained model as write_artifact received it."""
    seen = {}
    real_write = tunelab.run.artifacts.write_artifact

    def spy_write(run, *args, **kwargs):
        seen["model"] = run.model
        return real_write(run, *args, **kwargs)

    config = TrainConfig(model=str(base), epochs=1, batch_size=8, out=str(out), overwrite=True, forgetting=False,
                         max_length=16 if data.task == "causal-lm" else None, **options)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tunelab.run.artifacts, "write_artifact", spy_write)
        record = train(config, data=data, progress=False)
    return record, seen["model"].eval()


def test_lora_dropout_default_is_peft_default():
    from peft import LoraConfig

    assert TrainConfig().lora_dropout == LoraConfig().lora_dropout == 0.0


@pytest.mark.parametrize("variant", ["use_dora", "use_rslora"])
def test_lora_variant_reaches_peft_and_reloads_plainly(variant, tiny_bert_dir, toy_classification_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    record, model = _train(tiny_bert_dir, toy_classification_data, tmp_path, strategy="lora", lr=5e-3, **{variant: True})
    assert getattr(model.peft_config["default"], variant) is True
    saved = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert saved[variant] is True
    assert yaml.safe_load((tmp_path / "run_config.yaml").read_text())[variant] is True
    if variant == "use_dora":
        assert any("lora_magnitude_vector" in n for n, p in model.named_parameters() if p.requires_grad)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    plain = PeftModel.from_pretrained(base, tmp_path / "model").eval()
    assert_same_logits(plain, model, tmp_path / "model", TEXTS)


@pytest.mark.parametrize("strategy", ["lora", "full"])
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_gradient_checkpointing_gives_the_same_losses(arch, strategy, tiny_bert_dir, tiny_llama_dir,
                                                      toy_classification_data, tmp_path):
    base = tiny_bert_dir if arch == "bert" else tiny_llama_dir
    losses, checkpointed = [], []
    for on in (False, True):
        record, model = _train(base, toy_classification_data, tmp_path / str(on), strategy=strategy,
                               gradient_checkpointing=on)
        losses.append([record["train_info"]["epochs"][0]["train_loss"], record["metrics"]["validation"]["loss"]])
        checkpointed.append(model.is_gradient_checkpointing)
    assert checkpointed == [False, True]
    # BERT's dropout is redrawn in the recomputation from the saved random state: the same masks, the same losses
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not native_bf16(), reason="bfloat16 is not native on this machine (the option is refused)")
def test_bf16_base_trains_fp32_adapters_and_reloads(tiny_bert_dir, toy_classification_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    record, model = _train(tiny_bert_dir, toy_classification_data, tmp_path, strategy="lora", lr=5e-3,
                           base_dtype="bf16", gradient_checkpointing=True)
    assert record["train_info"]["precision"] == "bf16"
    assert yaml.safe_load((tmp_path / "run_config.yaml").read_text())["base_dtype"] == "bf16"
    saved = (tmp_path / "model" / "adapter_model.safetensors")
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(saved)).values()} == {torch.float32}  # adapters and head trained in fp32
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    plain = PeftModel.from_pretrained(base, tmp_path / "model").eval()
    # the trained model was held in bfloat16: its weights, turned back to float32 after training, are the rounded ones
    assert_same_logits(plain, model, tmp_path / "model", TEXTS, rtol=0.05, atol=0.05)


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(["-q", *argv])
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--base-dtype", "fp16"], "--base-dtype 'fp16' is unknown"),
        (["--base-dtype", "float16"], "--base-dtype 'float16' is unknown: use fp32, bf16 or auto"),
        (["--strategy", "full", "--base-dtype", "bfloat16"], "applies to strategies that keep every pre-trained weight frozen"),
        (["--strategy", "full", "--base-dtype", "bf16"], "applies to strategies that keep every pre-trained weight frozen"),
        (["--strategy", "lora", "--base-dtype", "bf16", "--precision", "fp32"], "computes in bfloat16"),
        (["--strategy", "head", "--gradient-checkpointing"], "does not combine with the frozen-layer cache"),
        (["--strategy", "lora", "--lora-layers", "1", "--gradient-checkpointing"], "add --no-cache"),
        (["--strategy", "lora", "--gradient-checkpointing", "--recompute-attention"], "drop one"),
        (["--strategy", "lora", "--lora-layers", "1", "--base-dtype", "bf16"], "already runs the frozen blocks once"),
        (["--strategy", "lora", "--lora-dropout", "1.5"], "--lora-dropout must be in [0, 1)"),
        (["--micro-batch-tokens", "-1"], "--micro-batch-tokens must be 0 (no cap) or positive"),
        (["--use-dora", "yes"], "unrecognized arguments: yes (see `tunelab train --help`)"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(flags, says, tiny_bert_dir, tmp_path):
    out = tmp_path / "run"
    code, err = _cli("train", "--model", str(tiny_bert_dir), "--out", str(out), *flags)
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    assert not out.exists()


def test_new_options_are_in_help():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["train", "--help"])
    for flag in ("--gradient-checkpointing", "--base-dtype", "--use-dora", "--use-rslora", "--lora-dropout",
                 "--micro-batch-tokens"):
        assert flag in out.getvalue()


def test_describe_names_the_variant_and_the_memory_options():
    from tunelab.strategies import get_strategy

    text = get_strategy("lora").describe(TrainConfig(strategy="lora", use_dora=True, use_rslora=True, base_dtype="bf16",
                                                     gradient_checkpointing=True), "classification", num_blocks=6)
    assert "DoRA" in text and "rsLoRA" in text and "bfloat16" in text and "gradient checkpointing" in text



# ----------------------------------------------------------------------------- LoRA's in-place forward


def _lora_pair(tiny_bert_dir, **lora):
    """The same peft LoRA model twice: with peft's forward and with tunelab's in-place one."""
    import copy

    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from tunelab.strategies.fused_lora import fuse_lora_forward

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, target_modules=["query", "value", "dense"], **lora)
    plain = get_peft_model(base, config)
    for name, p in plain.named_parameters():  # lora_B starts at zero: give it values so the update shows
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    fused = copy.deepcopy(plain)
    return plain, fused, fuse_lora_forward(fused)


def test_fused_lora_forward_matches_peft_in_outputs_and_gradients(tiny_bert_dir):
    plain, fused, count = _lora_pair(tiny_bert_dir)
    assert count > 0
    ids = torch.randint(5, 90, (3, 7))
    labels = torch.tensor([0, 1, 1])
    plain.train(), fused.train()
    torch.manual_seed(1)  # the same dropout masks in both
    a = plain(input_ids=ids, labels=labels)
    torch.manual_seed(1)
    b = fused(input_ids=ids, labels=labels)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-6)
    a.loss.backward(), b.loss.backward()
    grads = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    for n, p in fused.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6, msg=n)
    # merged, or with the adapter disabled, it is peft's forward: the base model's output
    plain.eval(), fused.eval()
    with fused.disable_adapter(), plain.disable_adapter():
        torch.testing.assert_close(fused(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_fused_lora_forward_allows_the_models_own_in_place_step_after_a_projection():
    """Longformer's global attention divides a LoRA projection's output in place (``q /= sqrt(d)``) and the frozen
    layer's output there is a view of a 2-D product: the in-place forward must give what peft's gives."""
    import copy

    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import LongformerConfig, LongformerForSequenceClassification

    from tunelab.strategies.fused_lora import fuse_lora_forward

    torch.manual_seed(0)
    config = LongformerConfig(vocab_size=64, pad_token_id=0, max_position_embeddings=64, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=64, attention_window=4)
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value", "query_global", "value_global"])
    plain = get_peft_model(LongformerForSequenceClassification(config), lora)
    for name, p in plain.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    fused = copy.deepcopy(plain)
    assert fuse_lora_forward(fused) > 0
    ids = torch.randint(5, 60, (2, 10))
    outputs = []
    for model in (plain, fused):
        torch.manual_seed(1)  # the same dropout masks in both
        outputs.append(model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1])))
    torch.testing.assert_close(outputs[1].logits, outputs[0].logits, rtol=1e-5, atol=1e-6)
    for out in outputs:
        out.loss.backward()
    grads = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    for n, p in fused.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6, msg=n)


def test_fused_lora_forward_leaves_dora_to_peft(tiny_bert_dir):
    plain, fused, _ = _lora_pair(tiny_bert_dir, use_dora=True)
    ids = torch.randint(5, 90, (2, 5))
    plain.eval(), fused.eval()
    torch.testing.assert_close(fused(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_lora_strategy_uses_the_fused_forward(tiny_bert_dir, toy_classification_data):
    from peft.tuners.lora.layer import Linear

    import tunelab.run.training
    from tunelab.config import TrainConfig

    run = tunelab.run.training.prepare(TrainConfig(model=str(tiny_bert_dir), strategy="lora"), toy_classification_data)
    layers = [m for m in run.model.modules() if type(m) is Linear]
    assert layers and all("forward" in vars(m) for m in layers)


def test_torch_spellings_of_a_precision_are_its_short_names(tmp_path):
    config = TrainConfig.from_dict({"model": "m", "base_dtype": "bfloat16", "cache_precision": "float32", "precision": "float16"})
    assert (config.base_dtype, config.cache_precision, config.precision) == ("bf16", "fp32", "fp16")
    assert TrainConfig(model="m", base_dtype="float32").base_dtype == "fp32"  # from Python too
    assert TrainConfig(model="m").replace(base_dtype="float16").base_dtype == "float16"  # not one it takes: refused as typed
    config.save(tmp_path / "run_config.yaml")
    assert yaml.safe_load((tmp_path / "run_config.yaml").read_text())["base_dtype"] == "bf16"  # recorded as the same run
