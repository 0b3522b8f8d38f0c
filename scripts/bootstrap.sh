#!/usr/bin/env bash
# Set up napari-brain-dl on a fresh machine, then run the demo or the tests.
#   bash scripts/bootstrap.sh demo [PATH ...]   # napari with the sample exam (or your scans)
#   bash scripts/bootstrap.sh test [PYTEST ARGS] # the whole test suite under a virtual display
# Creates .venv (override with NAPARI_BRAIN_DL_VENV), installs the CPU build of PyTorch when
# no NVIDIA GPU is present (GPU users: install your CUDA torch in the venv first), and, when
# run as root without Xvfb, the Debian packages for a virtual display.
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-}; shift || true
venv=${NAPARI_BRAIN_DL_VENV:-.venv}

if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q torch
  else
    python -m pip install -q torch==2.13.0   # CPU build; a bare "torch" pulls GBs of CUDA wheels
  fi
fi
python -m pip install -q -e ".[all,testing]"

display_packages="xvfb xauth libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 libxkbcommon0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
  libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1 libdbus-1-3 libfontconfig1"
need_xvfb() { [ "$job" = test ] || [ -z "${DISPLAY:-}" ]; }
if need_xvfb && ! command -v xvfb-run >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $display_packages >/dev/null
  else
    echo "Xvfb is missing: sudo apt-get install $display_packages" >&2; exit 1
  fi
fi
on_display() {  # run on the real display when there is one, else on a virtual one
  if [ -n "${DISPLAY:-}" ] && [ "$job" != test ]; then "$@"; else xvfb-run -a -s "-screen 0 1600x1000x24" "$@"; fi
}

case "$job" in
  demo) on_display napari-brain-dl demo "$@" ;;
  test) on_display python -m pytest "$@" ;;
  *) echo "usage: bash scripts/bootstrap.sh demo|test [ARGS]" >&2; exit 2 ;;
esac
