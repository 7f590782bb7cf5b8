#!/bin/bash
# One prepared check for a lent GPU machine (no network), run from the repository root there after
# `scripts/carry_builtins.py .gpu --with-bbc --python 3.12` wrote .gpu/ here and the call carried it:
#
#   bash scripts/gpu_session.sh            # the device tool: run(command="bash scripts/gpu_session.sh", carry=[".gpu"])
#
# Each step is bounded and its failure does not stop the next; results go to $OUT (default /tmp/gpu-session):
# the one-off passes with and without cuDNN's attention (gpu_passes.py), gpu_check's rows, the demo pair's wall times (issue 16's ratio on a GPU), and the fast suite verbosely (the
# names of passed and failed tests survive a timeout). About 8.5 minutes. benchmarks/README, "gpu_step.py".
# SKIP="check suite" leaves out gpu_check and the fast suite (about 5 minutes then).
OUT=${OUT:-/tmp/gpu-session}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || echo "PIP FAILED"
export PYTHONPATH=$PWD/src:$PWD/.gpu/site:/tmp/site
T0=$(date +%s); step() { echo; echo "=== $1 (t=$(( $(date +%s) - T0 )) s)"; }
step versions
python3 -c "import torch,transformers,peft,accelerate;print('torch',torch.__version__,torch.cuda.get_device_name(),'transformers',transformers.__version__,'peft',peft.__version__,'accelerate',accelerate.__version__)"
step "one-off passes, cuDNN attention left out (default) and allowed"
timeout 80 python3 benchmarks/gpu_passes.py --rounds 2 2>&1 | grep -E "^(device|round|variant|cuDNN)" | tee "$OUT/gpu_passes.txt"
skip() { [[ " $SKIP " == *" $1 "* ]]; }
skip check || { step gpu_check
timeout 100 python3 benchmarks/gpu_check.py --steps 300 --cpu-steps 5 2>&1 | grep -v "dropped 3 exact" | tee "$OUT/gpu_check.txt"; }
for mode in planned exhaustive; do
  step "demo ($mode)"
  flag=""; [ $mode = exhaustive ] && flag="--exhaustive"
  export TUNELAB_CACHE=$(mktemp -d /tmp/tlcache-XXXX)
  s=$(date +%s%N); timeout 110 python3 -m tunelab demo --fresh $flag --out /tmp/demo-$mode > "$OUT/demo-$mode.txt" 2>&1
  rc=$?; echo "demo $mode rc=$rc wall $(( ($(date +%s%N) - s) / 1000000 )) ms" | tee -a "$OUT/demo-walls.txt"
  cp /tmp/demo-$mode/results.csv "$OUT/demo-$mode-results.csv" 2>/dev/null
  grep -E "recommended|stopped early" "$OUT/demo-$mode.txt" | head -8
done
skip suite || { step "fast suite, GPU visible"
timeout 170 python3 -m pytest -v -n 14 -m "not integration and not browser" -p no:cacheprovider --timeout 100 -rfE \
  --tb=line -W ignore tests > "$OUT/pytest.txt" 2>&1; echo "pytest rc=$?"
grep -c PASSED "$OUT/pytest.txt"; grep -E "^(FAILED|ERROR) " "$OUT/pytest.txt" | cut -c1-200 | head -40; tail -1 "$OUT/pytest.txt"; }
step done
