#!/usr/bin/env bash
# Run HERE (the CPU machine, with internet to PyPI) before a GPU run: gathers into .gpu-wheels/
# (git-ignored) the Python packages the lent GPU machine lacks, as wheels for its Python 3.12.
# The GPU image (/work/.library/device/KINDS.md) has torch, torchvision, numpy, pillow, timm,
# huggingface_hub, safetensors, pytest, hypothesis; it lacks open_clip, sam2 and their small
# dependencies, and faiss. faiss-cpu (19 MB) comes along so that the CPU-side tests run as here;
# faiss-gpu (hundreds of MB) does not: on the GPU the support memory uses its torch index.
# Versions: the pins of pyproject.toml where it has one, else the version .venv holds (the tested
# set). Not carried: transformers (13 MB; the image has 5.17, our pin is 5.23; only the SigLIP2
# family's CPU-side tests use it). sam2, antlr4 and iopath ship only sources: their wheels are built
# here, pure Python (SAM2_BUILD_CUDA=0: no CUDA extension), so they install on any Python 3.
# Not carried either, so the patch-runtimes stage (issue 26: ONNX Runtime CUDA, TensorRT) is skipped
# there with that reason: onnxruntime-gpu 1.31.1 for Python 3.12 is a 255 MB wheel (over the 64 MiB
# carry; the image's onnxruntime 1.30 has the CPU provider only), and TensorRT's tensorrt-cu13-libs is a
# source stub that downloads >1 GB from NVIDIA's index at install time (docs/gpu.md).
# Idempotent: a wheel already present is kept; wheels of other versions are removed. Prints the
# total size, which travels with the working tree (the device tool carries at most 64 MiB).
#   scripts/gpu/prepare.sh            then: run(command="scripts/gpu/check.sh", carry=[".gpu-wheels"])
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.gpu-wheels
PY=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x "$PY" ] || { echo "prepare.sh: no .venv here; run scripts/setup.sh first (the versions come from it)" >&2; exit 1; }
mkdir -p "$DEST"

# name==version of every package to carry: pyproject's pins, then .venv's versions of their deps
mapfile -t REQS < <("$PY" - <<'PYEOF'
import importlib.metadata as md, re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
pins = {re.split("[=<>]", r)[0].strip().lower(): r.split("#")[0].strip()
        for r in project["dependencies"] + project["optional-dependencies"]["faiss-cpu"]}
# missing from the GPU image, or there at a version that may not do (timm: open_clip 3.3 needs
# >= 1.0.17; portalocker: the memory's directory lock); check.sh installs only what differs
names = ["open_clip_torch", "sam2", "faiss-cpu", "timm", "portalocker",
         "ftfy", "wcwidth", "hydra-core", "omegaconf", "antlr4-python3-runtime", "iopath"]
for name in names:
    print(pins.get(name.lower()) or f"{name}=={md.version(name)}")
PYEOF
)

normal() { echo "$1" | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/_/g'; }
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for req in "${REQS[@]}"; do
    name=${req%%==*}; version=${req##*==}; key=$(normal "$name")
    have=""
    for f in "$DEST"/*.whl; do
        [ -e "$f" ] || continue
        base=$(basename "$f"); fname=$(normal "${base%%-*}"); rest=${base#*-}; fver=${rest%%-*}
        if [ "$fname" = "$key" ]; then
            if [ "$fver" = "$version" ]; then have=$f; else rm -f "$f"; echo "removed stale $base"; fi
        fi
    done
    if [ -n "$have" ]; then echo "have  $(basename "$have")"; continue; fi
    if "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${PLATFORMS[@]}" -d "$DEST" "$req" 2>/dev/null; then
        echo "got   $req"
    else  # sources only: build a pure-Python wheel here
        SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$req"
        echo "built $req"
    fi
done
for f in "$DEST"/*.whl; do  # a wheel built here must be pure Python, or it would not load on 3.12
    case "$(basename "$f")" in
        *-none-any.whl|*-cp312-*|*-abi3-*) ;;
        *) echo "prepare.sh: $(basename "$f") is not usable on Python 3.12" >&2; exit 1 ;;
    esac
done
ls -1 "$DEST"
echo "total: $(du -ch "$DEST"/*.whl | tail -1 | cut -f1) in $DEST (the device tool carries at most 64 MiB)"
echo "not carried: onnxruntime-gpu (255 MB) and TensorRT (>1 GB): the patch-runtimes stage is skipped, saying why"
