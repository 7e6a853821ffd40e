#!/usr/bin/env bash
# Wheels bench/gpu_check.sh needs on a GPU machine that has torch 2.11 (CUDA 13), transformers 5.17,
# accelerate, peft and the scientific stack but no network: downloaded here into .whl/ (git-ignored),
# for Python 3.12 on manylinux x86_64, and the two big ones slimmed to what that machine runs:
# bitsandbytes keeps its CUDA 13 and CPU libraries (not those for CUDA 11.8-12.8 and ROCm), Unsloth
# drops its bundled Studio web app. Prints each wheel's size and the total, which must stay under the
# 64 MiB the device tool carries (with the repository).
#   bench/gpu_wheels.sh            # fill .whl/ (reuses what is there)
#   bench/gpu_wheels.sh --list     # print the pinned list only
set -euo pipefail
cd "$(dirname "$0")/.."

# name==version, one each; the versions the gpu extra pins (pyproject.toml) or that they need
WHEELS=(
  # training: TRL and datasets at the versions Unsloth admits, 4-bit, the recipe model
  trl==1.15.0 datasets==4.8.5 dill==0.4.0 multiprocess==0.70.18 peft==0.21.2 bitsandbytes==0.50.2
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  # Unsloth and what it imports
  unsloth==2026.10.9 unsloth_zoo==2026.10.9 tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 shtab==1.13.0
  msgspec==0.23.0 cut_cross_entropy==25.1.1 torchao==0.18.0 json5==0.17.3 nest-asyncio==1.6.0 structlog==26.1.0
  # lm-eval for the eval stage (sdist-only ones are built into wheels below)
  lm_eval==0.4.13 evaluate==0.4.6 pytablewriter==1.2.1 dataproperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1
  tabledata==1.3.5 tcolorpy==0.1.7 typepy==2.0.0 chardet==7.7.0 more_itertools==11.2.1
)
SDISTS=(sqlitedict==2.1.0 word2number==1.1)
if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${WHEELS[@]}" "${SDISTS[@]}"
  exit 0
fi

exclude=$(git rev-parse --git-path info/exclude)  # .whl/ must never be committed
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
mkdir -p .whl
py=${PYTHON:-python3}
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for spec in "${WHEELS[@]}"; do
  name=${spec%%==*}
  ver=${spec##*==}
  stem=$(echo "$name" | tr '-' '_')
  if ls .whl/ 2>/dev/null | grep -qi "^${stem}-${ver}-"; then continue; fi
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl "$spec"
done
for spec in "${SDISTS[@]}"; do  # pure-Python packages published only as sdists
  stem=$(echo "${spec%%==*}" | tr '-' '_')
  if ls .whl/ 2>/dev/null | grep -qi "^${stem}-"; then continue; fi
  "$py" -m pip wheel -q --no-deps -w .whl "$spec"
done

# slim the two big wheels (pip installs a wheel without checking RECORD against its files)
"$py" - <<'EOF'
import glob, os, re, zipfile

def slim(pattern: str, drop) -> None:
    for path in glob.glob(pattern):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            keep = [n for n in names if not drop(n)]
            if len(keep) == len(names):
                continue
            tmp = path + ".slim"
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
                for n in keep:
                    out.writestr(z.getinfo(n), z.read(n))
        os.replace(tmp, path)
        print(f"slimmed {os.path.basename(path)}: {len(names) - len(keep)} files dropped")

# bitsandbytes: the GPU machine's torch is built for CUDA 13; keep cuda13x and the CPU library
slim(".whl/bitsandbytes-*.whl", lambda n: bool(re.search(r"libbitsandbytes_(cuda(1[12]\d)|rocm\d+)", n)))
# unsloth: the Studio web app (frontend bundles, backend server) is not part of training
slim(".whl/unsloth-2*.whl", lambda n: n.startswith("studio/"))
EOF

total=0
for f in .whl/*.whl; do
  size=$(stat -c %s "$f")
  total=$((total + size))
  printf '%10d  %s\n' "$size" "$(basename "$f")"
done
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s+=$1} END {print s}')
printf 'wheels: %.1f MiB; repository: %.1f MiB; together %.1f MiB of the 64 MiB the device tool carries\n' \
  "$(echo "$total / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)" "$(echo "($total + $tree) / 1048576" | bc -l)"
if (( total + tree > 64 * 1048576 )); then
  echo "too big: drop lm_eval (the check then stops the run after train) or torchao" >&2
  exit 1
fi
