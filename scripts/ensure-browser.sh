#!/usr/bin/env bash
# The dashboard's browser test drives Debian's Chromium and ChromeDriver; a fresh machine lacks
# them. Install them when missing (as root, or through sudo); otherwise say what to do: the
# browser test then fails with the same instructions (set CRT_SKIP_BROWSER=1 to skip it).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "${CRT_SKIP_BROWSER:-0}" = "1" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium/chromedriver missing: run 'apt-get install chromium chromium-driver' as root" >&2
    exit 0
  fi
fi
echo "installing chromium and chromium-driver for the dashboard's browser test" >&2
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
