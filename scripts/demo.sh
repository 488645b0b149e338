#!/usr/bin/env bash
# README command 1: set up (idempotent), then the main job: Mask R-CNN with
# TinyViM-S trained on the generated COCO-format demo data on CPU, evaluated
# with COCO metrics, predictions drawn to work_dirs/demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
export PATH="${MMTINYVIM_VENV:-$root/.venv}/bin:$PATH"
exec bash tools/demo/train_demo.sh "$@"
