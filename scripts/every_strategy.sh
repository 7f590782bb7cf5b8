#!/usr/bin/env bash
# Every strategy through `tunelab train`, on small slices of the real packaged models and data:
# minilm + rotten-tomatoes, smollm2 + rotten-tomatoes (classification), smollm2 + bbc-text (causal LM).
# Prints one line per run (test metric, trainable share, train time) and the exit code of each.
#   bash scripts/every_strategy.sh [OUT_ROOT]
set -u
TL=${TUNELAB:-.venv/bin/tunelab}
OUT=${1:-runs/every-strategy}
SLICE="--epochs 1 --max-length 64 --batch-size 16 --overwrite"
run() {  # model data strategy extra...
  local model=$1 data=$2 strategy=$3; shift 3
  local out="$OUT/$model-$data-$strategy"
  local start=$SECONDS
  if $TL -q train --model "$model" --data "$data" --strategy "$strategy" --out "$out" $SLICE "$@" > "$out.log" 2>&1; then
    python3 - "$out/metrics.json" "$model" "$data" "$strategy" $((SECONDS - start)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = r["metrics"]["test"]; i = r["train_info"]
m = f"acc {t['accuracy']:.3f}" if "accuracy" in t else f"ppl {t['perplexity']:.1f}"
print(f"ok    {sys.argv[2]:8} {sys.argv[3]:16} {sys.argv[4]:14} {m:10} share {100*i['trainable_share']:7.3f} %  train {i['train_time_s']:6.1f} s  wall {sys.argv[5]} s")
PY
  else
    echo "FAIL  $model $data $strategy: $(tail -1 "$out.log")"
  fi
}
mkdir -p "$OUT"
for s in head last-n bitfit lora ia3 prompt-tuning gradual full; do
  run minilm rotten-tomatoes $s --max-train-samples 400 --max-eval-samples 200
done
for s in head last-n bitfit lora ia3 prompt-tuning gradual full; do
  run smollm2 rotten-tomatoes $s --max-train-samples 96 --max-eval-samples 48
done
for s in last-n bitfit lora ia3 prompt-tuning gradual full; do
  run smollm2 bbc-text $s --max-train-samples 12 --max-eval-samples 6 --batch-size 8
done
run smollm2 bbc-text head --max-train-samples 12  # must refuse: head is classification-only
