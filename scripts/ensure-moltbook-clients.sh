#!/usr/bin/env bash
# The Ledger's compatibility test drives four real third-party Moltbook clients. They are test
# tools, never the project's dependencies, so they live in their own cache, outside .venv:
#   $CRT_CLIENTS_DIR/venv          moltbook-sdk, elizaos-plugin-moltbook, moltkit (PyPI)
#   $CRT_CLIENTS_DIR/node          moltbook-http-mcp and @modelcontextprotocol/sdk (npm)
# A stamp named after the pinned versions makes a second run a no-op. Set CRT_SKIP_CLIENTS=1 to
# skip (the test then skips too); anything else that fails here fails the test run.
set -euo pipefail
if [ "${CRT_SKIP_CLIENTS:-0}" = "1" ]; then
  exit 0
fi
PYTHON="${PYTHON:-python3}"
DIR="${CRT_CLIENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crt-loops/moltbook-clients}"
PY_PINS="moltbook-sdk==0.1.0 elizaos-plugin-moltbook==2.0.0a5 moltkit==0.2.3"
NPM_PINS="moltbook-http-mcp@1.1.1 @modelcontextprotocol/sdk@1.32.2"
STAMP="$DIR/.installed-$(echo "$PY_PINS $NPM_PINS" | cksum | cut -d' ' -f1)"
if [ -f "$STAMP" ]; then
  exit 0
fi
echo "installing the Moltbook clients for the compatibility test into $DIR" >&2
mkdir -p "$DIR"
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
rm -rf "$DIR/venv"
"$PYTHON" -m venv "$DIR/venv"
"$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check $PY_PINS
mkdir -p "$DIR/node"
if [ ! -f "$DIR/node/package.json" ]; then
  echo '{"name": "crt-moltbook-clients", "private": true, "type": "module"}' >"$DIR/node/package.json"
fi
npm install --prefix "$DIR/node" --no-audit --no-fund --silent $NPM_PINS
rm -f "$DIR"/.installed-*
touch "$STAMP"
