#!/usr/bin/env bash
# Build the cribo-mm environment from nothing, idempotently.
#
#   tools/setup_env.sh            # creates .venv and installs the pinned stack
#
# Environment variables:
#   CRIBO_VENV    where the virtual environment lives   (default: <repo>/.venv)
#   CRIBO_CACHE   where the compiled mmcv wheel is kept (default: ~/.cache/cribo_mm)
#   PYTHON        interpreter used to create the venv   (default: python3.11 or python3)
#
# The first run compiles mmcv 2.1.0 with its C++ ops (15-25 min on 2 cores);
# the wheel is cached so later runs finish in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CRIBO_VENV:-$ROOT/.venv}"
CACHE="${CRIBO_CACHE:-$HOME/.cache/cribo_mm}"
MMCV_VERSION=2.1.0
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f

say()  { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[setup] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }
trap 'fail "command on line $LINENO exited with status $? (see the output above)"' ERR

if [ -z "${PYTHON:-}" ]; then
  PYTHON="$(command -v python3.11 || command -v python3 || true)"
fi
[ -n "$PYTHON" ] || fail "no python3 interpreter found; install Python 3.11"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 8)' \
  || fail "$PYTHON is older than Python 3.8"

# A stamp of every input that decides the environment: when it is unchanged and
# the environment imports, there is nothing to do.
STAMP_INPUT="$(cat "$ROOT/requirements/runtime.txt" "$ROOT/requirements/tests.txt" "$ROOT/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1)"
STAMP_FILE="$VENV/.cribo_env_stamp"
if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP_INPUT" ] \
   && "$VENV/bin/python" -c 'import mmcv.ops, mmseg.models, mmpretrain, cv2; cv2.ximgproc.segmentation.createSelectiveSearchSegmentation' 2>/dev/null; then
  say "environment in $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

say "installing torch 2.14.1, torchvision 0.29.1 and build tools"
"${PIP[@]}" install -q 'torch==2.14.1' 'torchvision==0.29.1' 'setuptools>=77,<81' wheel ninja

# mmcv with compiled ops: built from its sdist against the installed torch.
mkdir -p "$CACHE/wheels"
TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
WHEEL_DIR="$CACHE/wheels/torch-$TORCH_TAG"
MMCV_WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$MMCV_WHEEL" ]; then
  say "building mmcv $MMCV_VERSION with ops from source (first run only, 15-25 min on 2 cores)"
  BUILD="$CACHE/build"
  rm -rf "$BUILD" && mkdir -p "$BUILD" "$WHEEL_DIR"
  TARBALL="$BUILD/mmcv-$MMCV_VERSION.tar.gz"
  "$PY" "$ROOT/tools/fetch_sdist.py" mmcv "$MMCV_VERSION" "$MMCV_SHA256" "$TARBALL" \
    || fail "could not download the mmcv $MMCV_VERSION sdist from PyPI"
  tar -xzf "$TARBALL" -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  # torch >= 2.x headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
  grep -q -- '-std=c++17' "$SRC/setup.py" || fail "mmcv setup.py no longer contains -std=c++17; update the patch"
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  ( cd "$BUILD" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$WHEEL_DIR" "$SRC" ) \
    || fail "mmcv build failed (compiler output above)"
  rm -rf "$BUILD"
  MMCV_WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n1)"
  say "cached $MMCV_WHEEL"
else
  say "using cached mmcv wheel $MMCV_WHEEL"
fi

say "installing mmcv, the OpenMMLab stack and test tools"
"${PIP[@]}" install -q "$MMCV_WHEEL" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
# ORL's selective search lives in OpenCV's contrib modules. mmengine and mmcv
# pull in opencv-python, and both wheels own the same cv2 package: replace it
# by the contrib build of the same version, so exactly one OpenCV remains.
CV_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("opencv-python"))' 2>/dev/null || true)"
if [ -n "$CV_VERSION" ]; then
  say "replacing opencv-python $CV_VERSION by opencv-contrib-python-headless $CV_VERSION (selective search)"
  CV_OTHERS="$("$PY" -c 'import importlib.metadata as m
print(" ".join(d for d in ("opencv-python", "opencv-python-headless", "opencv-contrib-python")
               if any(True for _ in m.distributions(name=d))))')"
  "${PIP[@]}" uninstall -q -y $CV_OTHERS
  "${PIP[@]}" install -q --force-reinstall --no-deps "opencv-contrib-python-headless==$CV_VERSION"
fi
say "installing cribo_mm in editable mode"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

say "checking the stack"
"$PY" - <<'PYEOF' || fail "the installed stack does not import; see the traceback above"
import torch, mmcv, mmengine, mmpretrain, mmseg
import mmcv.ops  # compiled ops must load
import mmseg.models  # needs full mmcv
import importlib.metadata as md
import cv2
assert hasattr(getattr(getattr(cv2, 'ximgproc', None), 'segmentation', None),
               'createSelectiveSearchSegmentation'), (
    f'cv2 {cv2.__version__} has no contrib modules (cv2.ximgproc): '
    'reinstall opencv-contrib-python-headless')
others = [d for d in ('opencv-python', 'opencv-python-headless', 'opencv-contrib-python')
          if any(True for _ in md.distributions(name=d))]
assert not others, f'several OpenCV wheels share the cv2 package: {others}'
print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, "
      f"mmpretrain {mmpretrain.__version__}, mmseg {mmseg.__version__}, opencv-contrib {cv2.__version__}")
PYEOF
# cribo_mm itself is checked by the tests: a code error there is not an
# environment problem and must not trigger a reinstall.
echo "$STAMP_INPUT" > "$STAMP_FILE"
say "done: activate with 'source $VENV/bin/activate'"
