#!/usr/bin/env bash
# Builds Helm from the Go module proxy into ./bin (cached) and prints its
# path. The link flags are Helm's own release flags: the version, and the
# Kubernetes version `helm template` and `helm lint` assume (that of the
# client-go Helm is built with: 1.37 for v3.22).
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_K8S_MINOR="${HELM_K8S_MINOR:-37}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/bin/helm-$HELM_VERSION"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
printf 'helm: building helm.sh/helm/v3/cmd/helm@%s into %s\n' "$HELM_VERSION" "$BIN" >&2
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
GOBIN="$TMP" go install -trimpath -ldflags "-w -s \
  -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
mkdir -p "$ROOT/bin"
mv "$TMP/helm" "$BIN"
echo "$BIN"
