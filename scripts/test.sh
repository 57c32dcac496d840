#!/usr/bin/env bash
# The README's test command: system packages the tests need (ffmpeg/ffprobe for video streaming, Debian chromium
# for the browser test), a .venv with the project and its test extras, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffprobe >/dev/null || ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg chromium >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
exec .venv/bin/python -m pytest -q "$@"
