#!/usr/bin/env bash
# Writes config/argocd/argocd-cm.yaml from the health checks in Argo CD's
# upstream layout under config/argocd/resource_customizations.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=config/argocd/resource_customizations/iam.podidentity.io
{
  cat <<'YAML'
# Generated from config/argocd/resource_customizations by `make manifests`; do not edit.
# Merge into Argo CD's argocd-cm ConfigMap, for example with
#   kubectl -n argocd patch configmap argocd-cm --patch-file config/argocd/argocd-cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
YAML
  for kind in PodIdentityBinding PodIdentityGuardrail; do
    echo "  resource.customizations.health.iam.podidentity.io_${kind}: |"
    sed -e 's/^/    /' -e 's/^ *$//' "$dir/$kind/health.lua"
  done
} > config/argocd/argocd-cm.yaml
