#!/usr/bin/env bash
# CI: the package set the `gpu` extra resolves to (the transformers, TRL and datasets versions Unsloth's
# published requirements admit), installed with CPU torch in a fresh venv; then the CPU training tests.
# Unsloth itself needs CUDA (and xformers pins a CUDA torch), so it is resolved, not installed.
#   .ci/unsloth-set.sh                 # venv in $UNSLOTH_SET_VENV (default /tmp/workbench-unsloth-set)
#   .ci/unsloth-set.sh -k resume       # extra pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv=${UNSLOTH_SET_VENV:-/tmp/workbench-unsloth-set}
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip

# the gpu extra's pins, less the CUDA-only packages
mapfile -t pins < <(python3 - <<'EOF'
import re, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["gpu"]
for req in extra:
    if not re.match(r"(unsloth|unsloth_zoo|bitsandbytes)\b", req):
        print(req)
EOF
)
echo "gpu extra, CUDA-only packages left out: ${pins[*]}"

# 1. the whole extra resolves to one consistent set (metadata only: nothing CUDA is installed)
"$venv/bin/pip" install -q --dry-run --ignore-installed --report "$venv/gpu-resolve.json" ".[gpu]" >/dev/null
"$venv/bin/python" - "$venv/gpu-resolve.json" <<'EOF'
import json, sys
got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
print("gpu extra resolves to: " + ", ".join(f"{k}=={got[k]}" for k in ("unsloth", "unsloth_zoo", "unsloth-zoo", "transformers", "trl", "datasets", "peft", "bitsandbytes", "torch") if k in got))
EOF

# 2. that set with CPU torch, and the training tests on it
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q -e ".[cpu,dev]" "${pins[@]}"
"$venv/bin/python" -c "import transformers, trl, datasets, peft; print('testing on transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'peft', peft.__version__)"
"$venv/bin/python" -m pytest -q -m "not gpu" -p no:cacheprovider \
  tests/test_train.py tests/test_checkpoints.py tests/test_packing.py tests/test_lora.py tests/test_backend.py tests/test_plan.py tests/test_lock.py "$@"
