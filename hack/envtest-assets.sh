#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for envtest, and kube-controller-manager
# (namespace deletion, garbage collection, Deployments and ReplicaSets, token
# Secrets: testenv.StartControllerManager), and prints the directory that holds
# them (use it as KUBEBUILDER_ASSETS).
#
# 1. If the binaries are already in the cache, use them.
# 2. Otherwise try setup-envtest (needs its download site).
# 3. Otherwise build them from the Go module proxy:
#    kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes with
#    every k8s.io/* staging module replaced by its matching v0.x release, etcd from
#    go.etcd.io/etcd/server/v3. Only the missing binaries are built
#    (setup-envtest does not ship kube-controller-manager).
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

K8S_BINS="kube-apiserver kube-controller-manager kubectl"
have() { [ -x "$DIR/$1" ]; }
have_all() { have kube-apiserver && have kube-controller-manager && have etcd && have kubectl; }

if have_all; then
  echo "$DIR"
  exit 0
fi

# 2. setup-envtest, bounded so an unreachable download site does not stall us.
if [ -z "${ENVTEST_SKIP_DOWNLOAD:-}" ] && ! have kube-apiserver; then
  log "trying setup-envtest for ${K8S_VERSION}"
  if out="$(timeout 120 go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" \
      use "${K8S_VERSION}" -p path 2>/dev/null)" && [ -n "$out" ] && [ -x "$out/kube-apiserver" ]; then
    mkdir -p "$DIR"
    for b in kube-apiserver etcd kubectl; do
      [ -e "$DIR/$b" ] || cp "$out/$b" "$DIR/$b"
    done
    have_all && { echo "$DIR"; exit 0; }
  fi
fi
log "building the missing binaries from the Go module proxy"

# 3. Build from source.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGING="0.${K8S_VERSION#1.}"
GO_LINE="go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
mkdir -p "$WORK/out"

missing_k8s=""
for b in $K8S_BINS; do have "$b" || missing_k8s="$missing_k8s $b"; done
if [ -n "$missing_k8s" ]; then
  mkdir -p "$WORK/k8s/kube-apiserver" "$WORK/k8s/kube-controller-manager" "$WORK/k8s/kubectl"
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
  cat > kube-controller-manager/main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
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
    echo "$GO_LINE"
    echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    echo
    # Every staging module that k8s.io/kubernetes replaces with ./staging/... .
    grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u |
      while read -r m; do echo "replace $m => $m v${STAGING}"; done
  } > go.mod
  GOFLAGS=-mod=mod go mod tidy >&2

  for b in $missing_k8s; do
    log "building $b (several minutes)"
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/out/$b" "./$b"
  done
fi

if ! have etcd; then
  log "building etcd v${ETCD_VERSION}"
  mkdir -p "$WORK/etcd"
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
  printf 'module etcdbuild\n\n%s\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$GO_LINE" "$ETCD_VERSION" > go.mod
  GOFLAGS=-mod=mod go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/out/etcd" .
fi

mkdir -p "$DIR"
for f in "$WORK"/out/*; do
  b="$(basename "$f")"
  install -m 0755 "$f" "$DIR/$b.tmp"
  mv -f "$DIR/$b.tmp" "$DIR/$b"
done
log "binaries ready in $DIR"
echo "$DIR"
