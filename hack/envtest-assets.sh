#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for envtest and prints the directory
# that holds them (use it as KUBEBUILDER_ASSETS).
#
# 1. If the binaries are already in the cache, use them.
# 2. Otherwise try setup-envtest (needs its download site).
# 3. Otherwise build them from the Go module proxy:
#    kube-apiserver and kubectl from k8s.io/kubernetes with every k8s.io/* staging
#    module replaced by its matching v0.x release, etcd from go.etcd.io/etcd/server/v3.
#
# The cache is where setup-envtest keeps its binaries, so both paths share it.
# Progress goes to stderr; stdout carries only the directory.
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.6.16}"
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-release-0.22}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
DIR="${ENVTEST_ASSETS_DIR:-$DATA_HOME/kubebuilder-envtest/k8s/${K8S_VERSION}-${GOOS}-${GOARCH}}"

log() { printf 'envtest-assets: %s\n' "$*" >&2; }

have_all() { [ -x "$DIR/kube-apiserver" ] && [ -x "$DIR/etcd" ] && [ -x "$DIR/kubectl" ]; }

if have_all; then
  echo "$DIR"
  exit 0
fi

# 2. setup-envtest, bounded so an unreachable download site does not stall us.
if [ -z "${ENVTEST_SKIP_DOWNLOAD:-}" ]; then
  log "trying setup-envtest for ${K8S_VERSION}"
  if out="$(timeout 120 go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" \
      use "${K8S_VERSION}" -p path 2>/dev/null)" && [ -n "$out" ] && [ -x "$out/kube-apiserver" ]; then
    mkdir -p "$DIR"
    for b in kube-apiserver etcd kubectl; do
      [ -e "$DIR/$b" ] || cp "$out/$b" "$DIR/$b"
    done
    have_all && { echo "$DIR"; exit 0; }
  fi
  log "setup-envtest could not provide the binaries; building them from the Go module proxy"
fi

# 3. Build from source.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGING="0.${K8S_VERSION#1.}"

mkdir -p "$WORK/k8s/kube-apiserver" "$WORK/k8s/kubectl" "$WORK/etcd"
cd "$WORK/k8s"
cat > kube-apiserver/main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO
cat > kubectl/main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		os.Exit(1)
	}
}
GO

log "resolving k8s.io/kubernetes v${K8S_VERSION}"
gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
{
  echo "module envtestbuild"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
  echo
  echo "require k8s.io/kubernetes v${K8S_VERSION}"
  echo
  # Every staging module that k8s.io/kubernetes replaces with ./staging/... .
  grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u |
    while read -r m; do echo "replace $m => $m v${STAGING}"; done
} > go.mod
GOFLAGS=-mod=mod go mod tidy >&2

log "building kube-apiserver and kubectl (several minutes)"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/out/kube-apiserver" ./kube-apiserver
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/out/kubectl" ./kubectl

log "building etcd v${ETCD_VERSION}"
cd "$WORK/etcd"
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
GO
printf 'module etcdbuild\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' \
  "$(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')" "$ETCD_VERSION" > go.mod
GOFLAGS=-mod=mod go mod tidy >&2
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/out/etcd" .

mkdir -p "$DIR"
for b in kube-apiserver etcd kubectl; do
  install -m 0755 "$WORK/out/$b" "$DIR/$b.tmp"
  mv -f "$DIR/$b.tmp" "$DIR/$b"
done
log "binaries ready in $DIR"
echo "$DIR"
