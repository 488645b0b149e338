#!/usr/bin/env bash
# The main job (README command 1 runs it after set-up): Mask R-CNN with
# TinyViM-S trained on CPU on the generated COCO-format demo data, evaluated
# with COCO bbox/segm mAP, predictions drawn to work_dirs/demo/.
# Options go to tools/demo/train_demo.py (--work-dir, --data-root).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python}" tools/demo/train_demo.py "$@"
