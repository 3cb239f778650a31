#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment at .venv, from nothing on a fresh machine.
# Idempotent and quick when nothing changed: dependencies are reinstalled only when pyproject.toml
# changes, and the package (with its ROS interfaces, built by CMake) only when its sources change.
#   RNS_FAISS=gpu scripts/setup.sh   -> faiss-gpu instead of faiss-cpu (needs a CUDA machine)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PYTHON=${PYTHON:-python3}
FAISS=${RNS_FAISS:-cpu}
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

deps_key=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$FAISS
if [ "$(cat "$VENV/.deps-key" 2>/dev/null)" != "$deps_key" ]; then
    echo "[setup] installing pinned dependencies (first time: a few minutes)"
    # Read the pins from pyproject.toml: build tools, runtime deps, and the extras we need.
    mapfile -t build_reqs < <("$PY" - <<'PYEOF'
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))
PYEOF
)
    mapfile -t run_reqs < <(FAISS="$FAISS" "$PY" - <<'PYEOF'
import os, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = p["optional-dependencies"]
reqs = (p["dependencies"] + extras["faiss-" + os.environ["FAISS"]] + extras["ros"] + extras["eval"]
        + extras["siglip2"] + extras["console"] + extras["test"])
print("\n".join(r for r in reqs if not r.startswith("sam2")))
PYEOF
)
    sam2_req=$(grep -o '"sam2==[^"]*"' pyproject.toml | tr -d '"')
    "$PY" -m pip install -q "${build_reqs[@]}"
    "$PY" -m pip install -q "${run_reqs[@]}"
    # sam2 ships only an sdist: without these flags pip downloads a second torch into an isolated
    # build env and tries (and silently fails) to compile a CUDA extension we do not need.
    SAM2_BUILD_CUDA=0 "$PY" -m pip install -q --no-build-isolation "$sam2_req"
    echo "$deps_key" > "$VENV/.deps-key"
fi

# The teaching console's browser tests (test/console) drive a real headless Chromium through
# chromedriver: Debian's chromium + chromium-driver (Playwright's own browser download cannot be
# reached from our machines). As root (CI, a fresh machine like ours) install them; otherwise say
# how: those tests then fail, naming the command, rather than being skipped.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing chromium + chromium-driver (the console's browser tests)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver fonts-dejavu-core; } >/dev/null || \
            echo "[setup] WARNING: installing chromium failed; the browser tests will fail until it is installed"
    else
        echo "[setup] WARNING: no chromium/chromedriver: the console's browser tests will fail;" \
             "install them: sudo apt-get install chromium chromium-driver"
    fi
fi

# vision_msgs (the node publishes vision_msgs/LabelInfo) is not on PyPI: build the stand-in in
# interfaces/vision_msgs (LabelInfo and VisionClass only, same fields and type hashes as upstream)
# into the venv, but only where no vision_msgs exists: a real one (e.g. from a sourced apt ROS) is
# never shadowed. The key file marks the copy as ours, so a change to it is rebuilt.
vm_key=$( (find interfaces/vision_msgs -type f | LC_ALL=C sort | xargs sha256sum; echo "$PWD") | sha256sum | cut -c1-16)
vm_ours=$(cat "$VENV/.vision-msgs-key" 2>/dev/null || true)
if [ -z "$vm_ours" ] && { "$PY" -c "import vision_msgs.msg" >/dev/null 2>&1 || \
        AMENT_PREFIX_PATH="$PWD/$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" "$PY" -c \
        "from ament_index_python.packages import get_package_prefix as p; p('vision_msgs')" >/dev/null 2>&1; }; then
    echo "[setup] vision_msgs is already installed: using it (interfaces/vision_msgs not built)"
elif [ "$vm_ours" != "$vm_key" ]; then
    echo "[setup] building the vision_msgs stand-in (LabelInfo, VisionClass) into $VENV"
    prefix="$PWD/$VENV"
    AMENT_PREFIX_PATH="$prefix" CMAKE_PREFIX_PATH="$prefix" cmake -S interfaces/vision_msgs -B build/vision_msgs \
        -DCMAKE_INSTALL_PREFIX="$prefix" -DPython3_EXECUTABLE="$prefix/bin/python" -DBUILD_TESTING=OFF >/dev/null
    AMENT_PREFIX_PATH="$prefix" cmake --build build/vision_msgs --parallel "$(nproc)" >/dev/null
    cmake --install build/vision_msgs >/dev/null
    echo "$vm_key" > "$VENV/.vision-msgs-key"
fi

# Build and install rns_ros itself (ROS interfaces via CMake + the Python package) when any of its
# sources changed. Tests import the Python code from the source tree; the generated rns_ros.msg /
# rns_ros.srv come from this installed copy (see rns_ros/__init__.py).
pkg_key=$( (find pyproject.toml setup.py CMakeLists.txt package.xml msg srv rns_ros launch config rviz \
    -type f ! -name '*.pyc' 2>/dev/null || true) | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.pkg-key" 2>/dev/null)" != "$pkg_key" ]; then
    echo "[setup] building and installing rns_ros"
    "$PY" -m pip install -q --no-build-isolation --no-deps .
    echo "$pkg_key" > "$VENV/.pkg-key"
fi
