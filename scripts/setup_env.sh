#!/usr/bin/env bash
# Idempotent set-up of .venv with torch, mmcv 2.1.0, the OpenMMLab toolboxes
# and mmtinyvim (editable). Source it or run it; the second run is fast.
#   MMTINYVIM_STACK=onedl  the maintained onedl-mm* stack instead, in
#                          .venv-onedl (onedl-mmcv from ../shared/wheels/onedl
#                          or a source build, see install_mmcv.sh)
#   MMTINYVIM_VENV=PATH    another venv;  TORCH_SPEC=...  another torch
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MMTINYVIM_STACK=${MMTINYVIM_STACK:-openmmlab}
case $MMTINYVIM_STACK in
    openmmlab) venv=${MMTINYVIM_VENV:-$root/.venv} ;;
    onedl) venv=${MMTINYVIM_VENV:-$root/.venv-onedl} ;;
    *) echo "MMTINYVIM_STACK must be openmmlab or onedl" >&2; exit 2 ;;
esac
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
stamp="$venv/.mmtinyvim-setup"
fingerprint=$( (cat "$root/setup.py" "$root/scripts/setup_env.sh" \
              "$root/scripts/install_mmcv.sh"; echo "$MMTINYVIM_STACK") |
              sha1sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] &&
   "$venv/bin/python" -c "import mmtinyvim, mmdet, mmseg, mmpretrain, timm" \
       2>/dev/null; then
    echo "[setup] $venv is up to date"
    exit 0
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
pip_install() {  # pip without the local mirror's noise
    "$py" -m pip install "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
}
pip_install -q --upgrade 'pip>=23' wheel
pip_install $TORCH_SPEC
PYTHON=$py bash "$root/scripts/install_mmcv.sh"
# torch pinned again so that no requirement can move it off the requested build
# ([tests] brings timm: the variants are checked as timm models)
pip_install -e "$root[tests,$MMTINYVIM_STACK]" $TORCH_SPEC
# mim without its opendatalab requirement, whose openxlab pins setuptools
# 60.2 (torch 2.14 needs >= 77); mim's other requirements are in [tests]
pip_install --no-deps 'openmim==0.3.9'
# the package must not have moved torch away from the requested build
$py - <<PYEOF
import sys, torch
want = [s.split('==')[1] for s in '$TORCH_SPEC'.split() if s.startswith('torch==')]
if want and not torch.__version__.startswith(want[0]):
    sys.exit(f'[setup] torch {torch.__version__} installed, {want[0]} requested')
PYEOF
$py -c "import mmtinyvim, mmdet, mmseg, mmpretrain, mmcv.ops, timm; print('[setup] ok ($MMTINYVIM_STACK): mmcv', mmcv.__version__, 'torch', __import__('torch').__version__)"
echo "$fingerprint" > "$stamp"
