#!/usr/bin/env bash
# Run HERE (a machine with pip access) before `bash scripts/gpu_check.sh` on a lent GPU machine.
# Fills the git-ignored .gpu/ with what that machine's image lacks and cannot download (it has no network):
#   .gpu/whl/     wheels for Python 3.12 x86_64: segment-anything, pycocotools, imageio-ffmpeg (0.6.0: its bundled ffmpeg keeps
#                 the wheel at 29 MB; 0.8.x is 68 MB, over the 64 MiB a device call may carry)
#   .gpu/shared/  a copy of ../shared/fixtures (the device call carries only the repository)
# Then, with the device tool: run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=600).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu
mkdir -p .gpu/whl .gpu/shared
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl segment-anything==1.0 imageio-ffmpeg==0.6.0 pycocotools==2.0.11
cp -r ../shared/fixtures .gpu/shared/
du -sh .gpu
