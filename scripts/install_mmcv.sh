#!/usr/bin/env bash
# Install mmcv 2.1.0 (with compiled ops) for the current python/torch, or
# with MMTINYVIM_STACK=onedl onedl-mmcv 2.3.6 (same import name, also
# source-only on PyPI, same build fixes; wheels from ../shared/wheels/onedl).
#   1. reuse an installed, importable mmcv of that version;
#   2. else a prebuilt wheel from a find-links directory
#      ($MMCV_FIND_LINKS, default ../shared/wheels when it exists);
#   3. else build the PyPI sdist with the fixes modern torch needs:
#      setuptools<70 (mmcv's setup.py imports pkg_resources),
#      --no-build-isolation, MMCV_WITH_OPS=1, FORCE_CUDA=1 when a GPU is
#      present, and -std=c++20 for torch >= 2.14. Takes 17-30 min on 2 cores.
set -euo pipefail
PY=${PYTHON:-python}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${MMTINYVIM_STACK:-openmmlab}" = onedl ]; then
    MMCV_DIST=onedl-mmcv MMCV_VERSION=2.3.6 MMENGINE='onedl-mmengine==0.10.12'
    default_links="$here/../shared/wheels/onedl"
else
    MMCV_DIST=mmcv MMCV_VERSION=2.1.0 MMENGINE='mmengine==0.10.7'
    default_links="$here/../shared/wheels"
fi

if $PY - <<PYEOF 2>/dev/null
import mmcv, mmcv.ops
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
PYEOF
then
    echo "[install_mmcv] reusing installed mmcv $MMCV_VERSION"
    exit 0
fi

links=${MMCV_FIND_LINKS:-}
if [ -z "$links" ] && [ -d "$default_links" ]; then
    links="$default_links"
fi
if [ -n "$links" ]; then
    echo "[install_mmcv] trying a prebuilt wheel from $links"
    # mmcv itself only from there; its pure-python deps from the index
    if $PY -m pip install --only-binary="$MMCV_DIST" --find-links "$links" \
            "$MMCV_DIST==$MMCV_VERSION" &&
       $PY -c "import mmcv.ops" 2>/dev/null; then
        exit 0
    fi
    echo "[install_mmcv] no usable wheel there (python/torch mismatch?)"
    $PY -m pip uninstall -y "$MMCV_DIST" >/dev/null 2>&1 || true
fi

echo "[install_mmcv] building $MMCV_DIST $MMCV_VERSION from source (slow)"
# the known-good build recipe uses setuptools<70; torch >= 2.14 itself wants
# setuptools >= 77, so the newer one is put back after the build
$PY -m pip install 'setuptools<70' wheel ninja packaging addict yapf \
    "$MMENGINE" opencv-python
build=$(mktemp -d)
# --no-build-isolation: even reading the sdist's metadata needs pkg_resources
$PY -m pip download --no-deps --no-binary=:all: --no-build-isolation \
    -d "$build" "$MMCV_DIST==$MMCV_VERSION"
tar -xzf "$build"/*.tar.gz -C "$build"
src=$(find "$build" -mindepth 2 -maxdepth 2 -name setup.py -printf '%h\n' | head -1)
if $PY - <<'PYEOF'
import sys, torch
major, minor = (int(v) for v in torch.__version__.split('.')[:2])
sys.exit(0 if (major, minor) >= (2, 14) else 1)
PYEOF
then
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
fi
export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    export FORCE_CUDA=1
fi
$PY -m pip install --no-build-isolation "$src"
# back to what torch 2.14 (>= 77) and pkg_resources users (< 81) need:
# a plain 'setuptools<81' would leave the build's 69 in place
$PY -m pip install 'setuptools>=77,<81'
$PY -c "import mmcv.ops; print('[install_mmcv] built', mmcv.__version__)"
rm -rf "$build"
