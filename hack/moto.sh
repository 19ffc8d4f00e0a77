#!/usr/bin/env bash
# Installs the moto server (AWS IAM and STS emulator used by the tests and
# `make demo`) into a Python venv under ./bin and prints the path of the
# moto_server executable.
set -euo pipefail
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MOTO_VENV:-$ROOT/bin/moto-venv}"
BIN="$VENV/bin/moto_server"

if [ -x "$BIN" ] && "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "$BIN"
  exit 0
fi
printf 'moto: installing moto[server]==%s into %s\n' "$MOTO_VERSION" "$VENV" >&2
PY="${PYTHON:-python3}"
"$PY" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}" >&2
echo "$BIN"
