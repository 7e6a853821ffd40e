#!/usr/bin/env bash
# The demo band on another machine (a 16-core box, no GPU used): bench/demo_band.py --direct, 8 cells at once.
# Wheels for what that machine lacks travel in bench/out/whl (trl, datasets, lm-eval, pydantic, ...); results go to $OUT.
PY=${PY:-python3}
OUT=${OUT:-bench/out/device}
mkdir -p /tmp/site "$OUT"
$PY -m pip install -q --no-deps --no-index --target /tmp/site bench/out/whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD TQDM_DISABLE=1 WORKBENCH_CACHE=/tmp/wbcache HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 CUDA_VISIBLE_DEVICES=
$PY -c "import trl, datasets, lm_eval, pydantic, torch, transformers; import workbench.train.trainer, workbench.eval.run; print('imports ok', torch.__version__, transformers.__version__)" || exit 1
nproc
timeout "${BAND_TIMEOUT:-480}" $PY bench/demo_band.py --direct --parallel "${PARALLEL:-8}" --cells "${CELLS:-0:1,0:2,1:1,1:2,2:1,2:2,3:1,3:2}" \
  --data-from runs/demo-cpu --out /tmp/band > "$OUT/band.log" 2>&1
echo "exit $?"
cp /tmp/band/band.json "$OUT/" 2>/dev/null
grep -v "Loading\|Writing\|Warning\|warn" "$OUT/band.log" | tail -40
