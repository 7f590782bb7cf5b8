#!/bin/bash
# tunelab compare, every strategy, on tiny random models of 23 architectures beyond tests/test_conformance.py
# (README, "Beyond the suite"). Usage: scripts/arch_sweep.sh WORKDIR [ARCH ...]; about 40 minutes on 2 cores.
# Prints one line per model and task: the exit code and, from the JSON, the strategies that failed and why.
set -u
here=$(cd "$(dirname "$0")/.." && pwd); py=$here/.venv/bin/python; work=${1:?usage: scripts/arch_sweep.sh WORKDIR [ARCH ...]}; shift
mkdir -p "$work/logs" && cd "$work" || exit 2
[ -d models ] || "$py" "$here/scripts/arch_sweep_models.py" models "$@" > /dev/null 2>&1
"$py" - <<'PY'
import csv, random
random.seed(0)
words = {"sports": "match goal team player score league win coach".split(),
         "tech": "software chip phone data cloud app code device".split(),
         "money": "bank stock market price profit trade fund loan".split()}
common = "the a of and to in is was for on with as".split()
rows = []
for _ in range(150):
    label = random.choice(list(words))
    rows.append((" ".join(random.choice(words[label]) if random.random() < 0.4 else random.choice(common)
                           for _ in range(random.randint(5, 20))), label))
with open("data.csv", "w", newline="") as f:
    csv.writer(f).writerows([("text", "label"), *rows])
with open("corpus.txt", "w") as f:
    f.writelines(t + "\n" for t, _ in rows * 3)
PY
for m in ${@:-$(ls models)}; do
  for task in classification causal-lm; do
    if [ $task = causal-lm ]; then
      case $m in albert|electra|xlm-roberta|roformer|mobilebert|funnel) continue;; esac
      data=corpus.txt; strategies=last-n,bitfit,prompt-tuning,ia3,lora,gradual,full
    else data=data.csv; strategies=head,last-n,bitfit,prompt-tuning,ia3,lora,gradual,full; fi
    rm -rf "out/$m-$task"
    "$here/.venv/bin/tunelab" -q compare --model "models/$m" --data $data --strategies $strategies --epochs 1 \
      --batch-size 8 --max-length 32 --out "out/$m-$task" --no-pre-recommendation --json > "logs/$m-$task.json" 2> "logs/$m-$task.err"
    rc=$?
    failed=$("$py" -c "import json,sys
try: d = json.load(open(sys.argv[1]))
except ValueError: print(open(sys.argv[2]).read().strip().splitlines()[-1:]); sys.exit()
print([(r['run_info']['strategy'], r['run_info']['error']) for r in d['runs'] if r['run_info']['status'] != 'success'])" "logs/$m-$task.json" "logs/$m-$task.err")
    echo "$m $task rc=$rc failed: $failed"
  done
done
