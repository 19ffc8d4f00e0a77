#!/usr/bin/env bash
# Writes config/argocd/argocd-cm.yaml from config/argocd/health.lua.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  cat <<'YAML'
# Generated from config/argocd/health.lua by `make manifests`; do not edit.
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
  resource.customizations.health.iam.podidentity.io_PodIdentityBinding: |
YAML
  sed -e 's/^/    /' -e 's/^ *$//' config/argocd/health.lua
} > config/argocd/argocd-cm.yaml
