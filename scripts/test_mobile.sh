#!/usr/bin/env bash
# The LiteRT (mobile) conversion check, in an environment of its own:
# litert-torch brings a transformers release that breaks mmpretrain's
# imports, so it cannot share .venv. Sets up (idempotent) .venv-mobile with
# a CPU torch, litert-torch and the LiteRT interpreter (ai-edge-litert), then
# runs tests/test_export.py there: TinyViM-S and MobileMamba-T2 classifiers
# converted and compared with PyTorch (max|LiteRT - PyTorch| / std).
# mmtinyvim is used from this checkout (PYTHONPATH), as plain PyTorch.
#   --setup-only                 make the environment, run no test
#   MMTINYVIM_SKIP_MOBILE=1      do nothing (opt out, e.g. in CI)
#   MMTINYVIM_MOBILE_VENV=PATH   another venv (default: .venv-mobile)
#   MOBILE_TORCH_SPEC=...        another torch; the default CPU build is
#       found through pip's find-links here, elsewhere add
#       --extra-index-url https://download.pytorch.org/whl/cpu
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${MMTINYVIM_SKIP_MOBILE:-0}" = 1 ]; then
    echo "[mobile] skipped (MMTINYVIM_SKIP_MOBILE=1)"
    exit 0
fi
setup_only=0
if [ "${1:-}" = --setup-only ]; then
    setup_only=1
    shift
fi
venv=${MMTINYVIM_MOBILE_VENV:-$root/.venv-mobile}
# the versions docs/deployment.md records the parity numbers with
MOBILE_TORCH_SPEC=${MOBILE_TORCH_SPEC:-"torch==2.13.0+cpu"}
CONVERTER_SPEC="litert-torch==0.10.0 ai-edge-litert==2.3.0"
py="$venv/bin/python"
stamp="$venv/.mmtinyvim-mobile"
fingerprint=$(echo "$MOBILE_TORCH_SPEC $CONVERTER_SPEC pytest" | sha1sum |
              cut -c1-16)
start=$SECONDS
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
    echo "[mobile] $venv is up to date"
else
    [ -x "$py" ] || python3 -m venv "$venv"
    pip_install() {  # pip without the local mirror's noise
        "$py" -m pip install "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
    }
    pip_install -q --upgrade 'pip>=23'
    # torch first, then pinned again: nothing may swap in a CUDA build
    pip_install -q $MOBILE_TORCH_SPEC
    pip_install -q $CONVERTER_SPEC pytest $MOBILE_TORCH_SPEC
    "$py" -c "import litert_torch, ai_edge_litert.interpreter, torch; \
print('[mobile] ok: torch', torch.__version__)"
    echo "$fingerprint" > "$stamp"
    echo "[mobile] set up in $((SECONDS - start)) s," \
         "$(du -sh "$venv" | cut -f1)"
fi
[ "$setup_only" = 1 ] && exit 0
cd "$root"
# --noconftest: tests/conftest.py needs mmengine, which this environment
# lacks on purpose; the tests here use plain PyTorch only
MMTINYVIM_REQUIRE_LITERT=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$py" -m pytest \
    tests/test_export.py -q -s -rs --noconftest -p no:cacheprovider "$@"
echo "[mobile] tests: $((SECONDS - start)) s"
