#!/usr/bin/env bash
# Installs the AWS CLI (v1, from PyPI) into a Python venv under ./bin and
# prints the path of the aws executable. The install test runs the README's
# setup commands with it against moto.
set -euo pipefail
AWSCLI_VERSION="${AWSCLI_VERSION:-1.46.2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${AWSCLI_VENV:-$ROOT/bin/awscli-venv}"
BIN="$VENV/bin/aws"

if [ -x "$BIN" ] && "$BIN" --version 2>&1 | grep -q "^aws-cli/${AWSCLI_VERSION} "; then
  echo "$BIN"
  exit 0
fi
printf 'awscli: installing awscli==%s into %s\n' "$AWSCLI_VERSION" "$VENV" >&2
PY="${PYTHON:-python3}"
"$PY" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "awscli==${AWSCLI_VERSION}" >&2
echo "$BIN"
