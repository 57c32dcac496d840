#!/usr/bin/env bash
# Run HERE (a machine with pip access) before `bash scripts/gpu_check.sh` on a lent GPU machine.
# Fills the git-ignored .gpu/ with what that machine's image lacks and cannot download (it has no network):
#   .gpu/whl/     wheels for Python 3.12 x86_64: segment-anything, pycocotools, imageio-ffmpeg (0.6.0: its bundled ffmpeg keeps
#                 the wheel at 29 MB; 0.8.x is 68 MB, over the 64 MiB a device call may carry), and SAM 2.1's sam2 with
#                 what it imports (hydra-core, omegaconf, antlr4-python3-runtime, iopath, portalocker; under 1 MB)
#                 0.6.0 is below what pyproject.toml asks (>=0.8): its ffmpeg 7.0.2 crashes on .ts input. gpu_check.sh
#                 only reads the .mp4 files its benchmarks write, which it handles (a 20/40-frame e2e run with it
#                 passed, 2026-11-30); do not use this wheel for anything that reads user videos.
#   .gpu/shared/  a copy of ../shared/fixtures (the device call carries only the repository)
# Then, with the device tool: run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=600).
# PYTHON: the interpreter that builds the sam2 wheel (default: .venv/bin/python when there is one, else python3); it
# needs torch and setuptools >= 70.1 (or the wheel package).
set -euo pipefail
cd "$(dirname "$0")/.."
DEFAULT_PY=python3
[ -x .venv/bin/python ] && DEFAULT_PY=.venv/bin/python
PY=${PYTHON:-$DEFAULT_PY}
rm -rf .gpu
mkdir -p .gpu/whl .gpu/shared
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl segment-anything==1.0 imageio-ffmpeg==0.6.0 pycocotools==2.0.11 \
  hydra-core==1.3.2 omegaconf==2.3.0 portalocker==3.2.0
# sam2, antlr4-python3-runtime and iopath are published as source only: built here into pure-Python wheels (sam2
# without its optional CUDA extension, which the image path does not use; --no-build-isolation: its build would
# otherwise download torch)
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --disable-pip-version-check --no-cache-dir --no-deps --no-build-isolation \
  -w .gpu/whl sam2==1.1.0 antlr4-python3-runtime==4.9.3 iopath==0.1.10 \
  || { echo "building the sam2 wheel failed: run with PYTHON=<a python with setuptools >= 70.1>, e.g. .venv/bin/python"; exit 1; }
cp -r ../shared/fixtures .gpu/shared/
du -sh .gpu
