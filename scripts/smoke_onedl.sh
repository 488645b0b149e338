#!/usr/bin/env bash
# The onedl stack (onedl-mmengine/-mmcv/-mmdetection/-mmsegmentation/
# -mmpretrain) in .venv-onedl: set up (idempotent), then one training step
# + evaluation per task (det, seg, cls on generated data) and the golden
# parity tests, and that importing the package changes nothing outside it. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export MMTINYVIM_STACK=onedl
bash "$root/scripts/setup_env.sh"
cd "$root"
py="${MMTINYVIM_VENV:-$root/.venv-onedl}/bin/python"
"$py" -c "from mmtinyvim.stack import stack_name, stack_versions as v; \
assert stack_name() == 'onedl', v(); print('[smoke_onedl]', v())"
"$py" -m pytest -q -p no:cacheprovider \
    "tests/test_configs.py::test_config_trains_and_evaluates[maskrcnn_tinyvim_s_coco]" \
    "tests/test_configs.py::test_config_trains_and_evaluates[fpn_mobilemamba_t2_ade20k]" \
    "tests/test_configs.py::test_config_trains_and_evaluates[mobilemamba_t2_in1k]" \
    tests/test_tinyvim.py tests/test_mobilemamba.py tests/test_import_purity.py \
    -k "trains_and_evaluates or parity or official_manifest or changes_nothing or snapshot_sees" "$@"
"$py" -m pytest -q -p no:cacheprovider tests/test_mmpretrain_names.py
