#!/usr/bin/env bash
# make test-runtime-like: the package in a venv with Colab's versions (August 2026), installed the way
# a chapter's install cell installs it, then the fast tests and chapters 01-03 in smoke mode.
# Colab: Python 3.13, torch 2.11.0, torchvision 0.26.0, numpy 2.1.3, ipywidgets 7.7.1, matplotlib 3.10.0,
# scikit-image 0.25.2, scipy 1.16.3, albumentations 2.0.8, opencv-python 5.0.0.93, ipykernel 6.17.1, no
# ipympl. torch 2.11.0 from PyPI is a CUDA build of several GB; it runs on the CPU here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-runtime-like
# Python 3.13 as Colab has it, where this machine has one (a pyenv shim that cannot run does not count)
find_python() {
  for c in "${PYTHON_313:-}" python3.13 ~/.pyenv/versions/3.13*/bin/python3.13; do
    if [ -n "$c" ] && "$c" --version >/dev/null 2>&1; then echo "$c"; return; fi
  done
  echo python3
}
PYTHON_313=$(find_python)
echo "runtime-like venv with $($PYTHON_313 --version)"
rm -rf "$VENV"
"$PYTHON_313" -m venv "$VENV"
PIP="$VENV/bin/python -m pip install --quiet --disable-pip-version-check"
# what a Colab runtime already has
$PIP torch==2.11.0 torchvision==0.26.0 numpy==2.1.3 ipywidgets==7.7.1 matplotlib==3.10.0 scikit-image==0.25.2 \
    scipy==1.16.3 albumentations==2.0.8 opencv-python==5.0.0.93 ipykernel==6.17.1 pandas 2>&1 | { grep -v '^WARNING: Location' || true; }
# the install cell, as every chapter runs it, with the wheel as PIP
WHEEL=$(ls dist/samocta-*.whl)
cell=$($VENV/bin/python - <<'PY'
import json
source = "".join(json.load(open("notebooks/01_data.ipynb"))["cells"][2]["source"])
print(source.split("from samocta.reader import setup")[0])
PY
)
$VENV/bin/python -c "import os; PIP = '$WHEEL'
$cell"
# what the tests and the papermill run need beyond the runtime (not installed on Colab by the chapters)
$PIP pytest hypothesis papermill nbformat PyYAML 2>&1 | { grep -v '^WARNING: Location' || true; }
$VENV/bin/python - <<'PY'
import importlib.metadata as m
for name in ("torch", "torchvision", "numpy", "ipywidgets", "matplotlib", "scikit-image", "scipy", "albumentations",
             "segment-anything", "samocta", "pandas"):
    print(f"  {name} {m.version(name)}")
PY
# the fast tests (they import the source tree, the same files as the wheel) against these versions
$VENV/bin/python -m pytest -q -p no:cacheprovider
work=$(mktemp -d)
for nb in 01_data 02_prompts 03_finetune; do
  start=$SECONDS
  SAMOCTA_MODE=smoke SAMOCTA_WORKDIR="$work/samocta-work" MPLBACKEND=module://matplotlib_inline.backend_inline \
    $VENV/bin/python -m papermill --no-progress-bar -k python3 --cwd "$work" "notebooks/$nb.ipynb" "$work/$nb.ipynb" >/dev/null
  echo "chapter $nb executed in smoke mode in $((SECONDS - start)) s"
done
