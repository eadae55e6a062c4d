#!/usr/bin/env bash
# The PostgreSQL lane of the suite (and `make bench`) starts a throwaway cluster with Debian's
# `postgresql` package (tests/support/pg_cluster.py). Install it when missing (as root, or
# through sudo); otherwise say what to do: the PostgreSQL tests then skip, naming this script.
# CRT_SKIP_POSTGRES=1 skips the install and the PostgreSQL lane.
set -euo pipefail
if [ "${CRT_SKIP_POSTGRES:-0}" = "1" ]; then
  exit 0
fi
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "postgresql missing: run 'apt-get install postgresql' as root" >&2
    exit 0
  fi
fi
echo "installing postgresql for the suite's PostgreSQL lane" >&2
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
