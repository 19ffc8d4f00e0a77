#!/usr/bin/env bash
# Sets the release version everywhere the repository records it: the
# Makefile's VERSION, the image tag config/manager pins (so a kustomize base
# at the tag runs that release), and the chart's version and appVersion.
# Run by `make release`; commit the result and tag it v<version>.
set -euo pipefail
VERSION="${1:?usage: hack/set-version.sh x.y.z}"
if ! [[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "version $VERSION is not semver x.y.z" >&2
  exit 1
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
sed -i -E "s/^VERSION \?= .*/VERSION ?= $VERSION/" "$ROOT/Makefile"
sed -i -E "s/^(  newTag: ).*/\1v$VERSION/" "$ROOT/config/manager/kustomization.yaml"
sed -i -E "s/^version: .*/version: $VERSION/; s/^appVersion: .*/appVersion: \"$VERSION\"/" "$ROOT/charts/podidentity-operator/Chart.yaml"
