#!/usr/bin/env bash
# The GPU check: what the CPU suite cannot verify, in under 5 minutes on one CUDA GPU with no network.
#  1. the environment (GPU, versions) and whether Unsloth imports;
#  2. the gpu-marked tests, the exact-labels test and the packing tests, under backend=peft and backend=unsloth;
#  3. a 4-bit end-to-end run of the demo recipe on a ~290M-parameter model built from a config, per backend:
#     tokens/s, and peak torch.cuda.max_memory_allocated() against `workbench plan`'s estimate.
# Each step has its own time limit and reports a line whatever happens; a backend that cannot run here
# (Unsloth missing or failing to import) is skipped with a line saying why. Figures go to $OUT/gpu_check.txt.
#
#   bench/gpu_wheels.sh                      # here, once: the wheels that machine lacks, into .whl/
#   bash bench/gpu_check.sh                  # there, with .whl carried (it installs them to /tmp/site)
#   bash bench/gpu_check.sh --dry-run        # print the steps and exit (anywhere)
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
report="$OUT/gpu_check.txt"
: > "$report"
py=${PYTHON:-python3}
t_start=$SECONDS
say() { echo "$*" | tee -a "$report"; }
budget=${GPU_CHECK_BUDGET:-285}  # seconds for the whole check: a step gets at most what is left of it
# step NAME SECONDS COMMAND...: run with a time limit, log its tail, one status line
step() {
  local name=$1 limit=$2; shift 2
  if (( dry )); then say "would run [$name, ${limit}s]: $*"; return 0; fi
  local left=$((budget - (SECONDS - t_start)))
  if (( left < 20 )); then say "$name: SKIPPED (the ${budget}s budget is spent)"; return 1; fi
  (( limit > left )) && limit=$left
  local t0=$SECONDS log="$OUT/$name.log"
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  local rc=$?
  tail -n 25 "$log" | sed "s/^/  [$name] /" >> "$report"
  if (( rc == 124 || rc == 137 )); then say "$name: TIMED OUT after ${limit}s"; elif (( rc )); then say "$name: FAILED (exit $rc)"; else say "$name: ok ($((SECONDS - t0))s)"; fi
  return $rc
}

export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1
export WORKBENCH_CACHE=${WORKBENCH_CACHE:-/tmp/workbench-cache}
if compgen -G ".whl/*.whl" > /dev/null; then
  if (( dry )); then say "would install $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site"; else
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > "$OUT/wheels.log" 2>&1 \
      && say "installed $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site" || say "installing the carried wheels FAILED: $(tail -3 "$OUT/wheels.log")"
  fi
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
  say "no .whl/ here: using the packages installed on this machine"
fi

say "== environment (budget ${budget}s)"
step env 30 "$py" - <<'EOF'
import importlib.metadata as md, subprocess
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip())
except OSError:
    print("nvidia-smi: not found")
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for p in ("transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets", "unsloth", "unsloth_zoo", "lm_eval", "polars", "pydantic"):
    try:
        print(p, md.version(p))
    except md.PackageNotFoundError:
        print(p, "MISSING")
EOF
unsloth=1
if ! step unsloth-import 60 "$py" -c "import unsloth; print('unsloth', unsloth.__version__)"; then
  unsloth=0
  say "unsloth: cannot be imported here ($(grep -m1 -E 'Error|error' "$OUT/unsloth-import.log" 2>/dev/null | cut -c1-200)): the Unsloth backend is SKIPPED below"
fi

say "== tests (gpu-marked, exact labels, packing) under each backend"
tests=(tests/test_train.py tests/test_packing.py)
pick='gpu or exactly_the_mask_modules_labels or packing_keeps_examples_apart or packing_is_refused or trains_unpacked'
step tests-peft 100 env WORKBENCH_TEST_BACKEND=peft "$py" -m pytest -q -x -p no:cacheprovider "${tests[@]}" -k "($pick) and not unsloth"
if (( unsloth )); then
  # unsloth first, so it patches transformers, TRL and PEFT before the tests import them
  step tests-unsloth 100 env WORKBENCH_TEST_BACKEND=unsloth "$py" -c "import sys, unsloth, pytest; sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', *sys.argv[1:]]))" "${tests[@]}" -k "$pick"
else
  say "tests-unsloth: SKIPPED (unsloth cannot be imported)"
fi

say "== 4-bit end-to-end run of the demo recipe (~290M-parameter model from a config), per backend"
step e2e-peft 120 "$py" bench/gpu_run.py --backend peft --out /tmp/gpu-check
if (( unsloth )); then
  step e2e-unsloth 120 "$py" bench/gpu_run.py --backend unsloth --out /tmp/gpu-check
else
  say "e2e-unsloth: SKIPPED (unsloth cannot be imported)"
fi

say "== figures"
"$py" - "$OUT" <<'EOF' | tee -a "$report"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for backend in ("peft", "unsloth"):
    log = out / f"e2e-{backend}.log"
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.startswith("{")] if log.is_file() else []
    if not rows:
        print(f"{backend}: no figures")
        continue
    r = rows[-1]
    if "skipped" in r:
        print(f"{backend}: skipped: {r['skipped']}")
        continue
    tps = f"{r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") else "?"
    print(f"{backend}: {r['steps']} steps, {tps} tokens/s (median of logged steps), loss {r['loss'][0]:.3f} -> {r['loss'][1]:.3f}; "
          f"peak allocated {r['peak_allocated_gb']:.2f} GB vs plan {r['plan_gb_without_context']:.2f} GB (+1 GB context: {r['plan_gb']:.2f}); "
          f"trainable {r['trainable']:,} (plan {r['plan_trainable']:,}); data stages {'ran' if r['data_stages'] else 'not run (no polars)'}; "
          f"eval: {json.dumps(r.get('eval'))[:300]}")
EOF
say "total: $((SECONDS - t_start))s"
