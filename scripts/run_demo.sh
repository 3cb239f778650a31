#!/usr/bin/env bash
# The main job in one command: set up .venv if needed (scripts/setup.sh), then run rns-demo:
# an image-folder camera (the package's sample images by default) -> the rns segmentation node ->
# labels and overlays written to output/demo/, with throughput and latency printed.
#   scripts/run_demo.sh                          # the real backbone: needs its weights (docs/ros.md)
#   scripts/run_demo.sh --backbone test-tiny     # random-weight model: checks the plumbing only
#   scripts/run_demo.sh --images DIR --classes "mug, keyboard" --frames 50 --output out/
#   scripts/run_demo.sh --bag my_recording --image-topic /camera/color/image_raw   # a recording as the camera
# Every option: scripts/run_demo.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# OpenMP threads sleep instead of spinning while they wait (several times faster on busy cores)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec .venv/bin/rns-demo "$@"
