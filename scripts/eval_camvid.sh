#!/usr/bin/env bash
# End-to-end rns-eval run on the 11-class CamVid (support sampled from train, scored on test),
# with the TEST-ONLY random-weight backbone "test-tiny": exercises every stage (readers, support
# sampling, feature cache, RNS + ablation + baselines, partial support, metrics, tables, plots) on
# a CPU in a few minutes. Its numbers mean NOTHING about segmentation quality.
# For real numbers use --backbone openclip-vit-b16 on a GPU (docs/eval.md).
#   scripts/eval_camvid.sh [OUT_DIR] [extra rns-eval arguments...]
#   CAMVID_ROOT=/data/camvid MAX_IMAGES=233 scripts/eval_camvid.sh output/camvid-full
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${CAMVID_ROOT:-../shared/data/camvid}
OUT=${1:-output/eval-camvid-test-tiny}
shift || true
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m rns_ros.cli.eval --dataset camvid --root "$ROOT" --out "$OUT" \
    --backbone test-tiny --methods zero-shot,rns,rns-no-text,knn-clip,freeda,linear \
    --shots 1,5 --seeds 100,18 --settings full,partial-visual:0.5 \
    --max-images "${MAX_IMAGES:-40}" --threads 1 "$@"
