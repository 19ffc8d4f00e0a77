#!/usr/bin/env bash
# Copies the generated and shared manifests the Helm chart renders from
# (CRDs, the manager's RBAC rules, the webhook configurations, the alerts, the dashboard)
# into charts/podidentity-operator/files, unchanged. Run by `make manifests`;
# `make verify-generated` fails when the copies are stale.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/charts/podidentity-operator/files"
rm -rf "$DEST"
mkdir -p "$DEST/crds" "$DEST/rbac" "$DEST/webhook" "$DEST/prometheus" "$DEST/grafana"
cp "$ROOT"/config/crd/bases/*.yaml "$DEST/crds/"
cp "$ROOT/config/rbac/role.yaml" "$DEST/rbac/"
cp "$ROOT/config/webhook/manifests.yaml" "$DEST/webhook/"
cp "$ROOT/config/components/pod-identity-webhook/mutating_webhook.yaml" "$DEST/webhook/"
cp "$ROOT/config/prometheus/rules.yaml" "$DEST/prometheus/"
cp "$ROOT/config/components/grafana-dashboard/podidentity-operator.json" "$DEST/grafana/"
cat > "$DEST/README.md" <<'README'
Copies made by `make manifests` (hack/chart-files.sh) from config/: do not edit
them here. The templates render from them, so the chart and config/ cannot drift.
README
