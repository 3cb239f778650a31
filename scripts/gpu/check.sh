#!/usr/bin/env bash
# The GPU check of issues 14 and 27 (docs/gpu.md). Run from the repository root on the lent GPU machine:
#   scripts/gpu/check.sh                        # device call: carry [".gpu-wheels"], timeout_s 420
#   scripts/gpu/check.sh --device cpu --quick   # the CPU dry run (a test of its own, < 3 min here)
# Installs the wheels of .gpu-wheels/ (scripts/gpu/prepare.sh) that this Python lacks at that
# version into a private folder put on PYTHONPATH (nothing of the machine's own is touched; torch,
# torchvision and numpy are always the machine's), then runs scripts/gpu/check.py, which writes
# report.md, report.json, stages/ and check.log to $OUT (or output/gpu-check) and prints the report
# on stdout; progress goes to stderr. Other options go to check.py: --budget SECONDS (360), --only STAGE,...
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python  # the development machines
else PY=python3; fi                                      # the GPU machine: its torch Python
SITE=${RNS_GPU_SITE:-${TMPDIR:-/tmp}/rns-gpu-site}
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

missing=()
for wheel in .gpu-wheels/*.whl; do
    [ -e "$wheel" ] || continue
    base=$(basename "$wheel"); name=${base%%-*}; rest=${base#*-}; version=${rest%%-*}
    "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version(sys.argv[1]) != sys.argv[2])" \
        "$name" "$version" 2>/dev/null || missing+=("$wheel")
done
installed=$(for w in "${missing[@]}"; do basename "$w" | cut -d- -f1,2; done | paste -sd, -)
if [ ${#missing[@]} -gt 0 ]; then
    echo "[check] installing ${#missing[@]} wheel(s) into $SITE" >&2
    # a failed install is no reason to lose the run: the env stage reports what is missing
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${missing[@]}" >&2 || { echo "[check] wheel install failed; running on what the machine has" >&2; installed=""; }
fi
export RNS_GPU_WHEELS_INSTALLED=${installed:-none}
exec "$PY" scripts/gpu/check.py "$@"
