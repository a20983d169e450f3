# vaultsync Makefile. Target names follow kubebuilder's conventions.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

ROOT := $(shell pwd)
LOCALBIN ?= $(ROOT)/bin
export PATH := $(LOCALBIN):$(PATH)

IMG ?= ghcr.io/vaultsync/vaultsync:dev
K8S_VERSION ?= 1.37.2
ENVTEST_DIR ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
export KUBEBUILDER_ASSETS ?= $(ENVTEST_DIR)

## Tool versions (pinned; never @latest)
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0
KUSTOMIZE_VERSION ?= v5.8.3
GOLANGCI_LINT_VERSION ?= v2.15.0
ACTIONLINT_VERSION ?= v1.7.12
CYCLONEDX_GOMOD_VERSION ?= v1.10.0

CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
KUSTOMIZE ?= $(LOCALBIN)/kustomize
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
ACTIONLINT ?= $(LOCALBIN)/actionlint-$(ACTIONLINT_VERSION)
CYCLONEDX_GOMOD ?= $(LOCALBIN)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)

## Versions. The VERSION file is the one source of the release version (RELEASE_VERSION): the chart's version and
## appVersion, the image tag and the CRDs' version label follow it (hack/sync-version.sh, make verify; test/release
## checks them). VERSION is what a build's --version says: RELEASE_VERSION on the commit tagged v$(RELEASE_VERSION),
## otherwise RELEASE_VERSION+g<commit>[.dirty] (hack/version.sh).
RELEASE_VERSION ?= $(shell tr -d ' \t\r\n' < VERSION)
VERSION ?= $(shell hack/version.sh)
## Build flags shared by `make build` and the Dockerfile (hack/build-flags.sh is the one place they live).
LDFLAGS = $(shell VERSION=$(VERSION) hack/build-flags.sh)

# Test timeouts: each suite has its own, so a hung test fails instead of eating CI.
TEST_TIMEOUT ?= 12m

.PHONY: all
all: build

##@ General
.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development
.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=vaultsync-manager crd:allowDangerousTypes=false webhook paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: docs
docs: ## Generate docs/api.md from the CRDs.
	go run ./hack/apidocs config/crd/bases docs/api.md

.PHONY: bench-events
bench-events: envtest-bins ## Event Grid path: time from a new Key Vault version to the Secret (p50/p99/max of 1,000 rotations).
	go test -run '^$$' -bench EventToSecret -benchtime 1000x -timeout 10m ./test/eventbench/

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: sync-version
sync-version: ## Copy VERSION into the chart, the kustomizations and docs/install.md (hack/sync-version.sh).
	hack/sync-version.sh

.PHONY: notice
notice: ## Regenerate NOTICE: ours and the notices of the Go modules the manager links (hack/gen-notice.sh).
	hack/gen-notice.sh

.PHONY: verify
verify: manifests generate chart-crds docs sync-version notice ## Regenerate everything and fail if the tree changed.
	@if [ -n "$$(git status --porcelain -- api config charts docs NOTICE)" ]; then \
		git status --porcelain -- api config charts docs NOTICE; git diff -- api config charts docs NOTICE | head -50; \
		echo "generated files are stale: run 'make manifests generate chart-crds docs sync-version notice' and commit"; exit 1; fi

.PHONY: test
test: envtest-bins helm vet ## Unit, emulator, admission, controller, chart and control-plane suites.
	go test -timeout $(TEST_TIMEOUT) -count=1 $$(go list ./... | grep -v -e /test/faults -e /test/bench -e /test/eventbench)

##@ Build
.PHONY: build
build: ## Build the manager binary into bin/manager.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/manager .

.PHONY: emulator
emulator: ## Build the Key Vault + Entra ID emulator into bin/kv-emulator.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/kv-emulator ./test/emulator/cmd/kv-emulator

.PHONY: run
run: ## Run the manager from your host against the current kubeconfig (development mode).
	go run . --dev

# make image: the image from the Dockerfile, built with buildah and no container engine, saved as an OCI
# archive (docs/image.md). The Dockerfile's bases are replaced by local stand-ins (hack/image/build.sh).
IMAGE_TAG ?= vaultsync:dev
IMAGE_ARCHIVE ?= $(LOCALBIN)/image/vaultsync.tar

.PHONY: image
image: ## Build the image with buildah (no Docker engine; local stand-in bases) into bin/image/vaultsync.tar.
	VERSION=$(VERSION) IMAGE_TAG=$(IMAGE_TAG) IMAGE_ARCHIVE=$(IMAGE_ARCHIVE) hack/image/build.sh

.PHONY: test-image
test-image: image ## Build the image, then check the archive: user, entrypoint, no shell, static manager, same version as make build.
	VERSION=$(VERSION) IMAGE_TAG=$(IMAGE_TAG) IMAGE_ARCHIVE=$(IMAGE_ARCHIVE) VAULTSYNC_REQUIRE_IMAGE=1 \
		go test -timeout 5m -count=1 -v ./test/image/

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: docker-buildx
docker-buildx: ## Build and push a multi-arch image (needs docker buildx).
	docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=$(VERSION) -t $(IMG) --push .

##@ Release
# What a tag v$(RELEASE_VERSION) publishes is built by .github/workflows/release.yml; the workflows cannot run here, so
# they are linted, and release-dry-run builds the same artefacts locally without pushing anything.
RELEASE_DIR ?= $(LOCALBIN)/release/$(RELEASE_VERSION)
# The daemonless image build (an image archive of the Dockerfile), when this Makefile has one; empty skips it.
RELEASE_IMAGE_TARGET ?= $(shell $(MAKE) --no-print-directory -n image >/dev/null 2>&1 && echo image)

.PHONY: version
version: ## Print the release version (the VERSION file) and the version a build of this tree carries.
	@echo "RELEASE_VERSION=$(RELEASE_VERSION) VERSION=$(VERSION)"

.PHONY: lint-workflows
lint-workflows: actionlint ## Lint .github/workflows with actionlint (and shellcheck on their run: scripts).
	@if ! command -v shellcheck >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing shellcheck (Debian) so actionlint checks the workflows' scripts"; \
			apt-get update -qq >/dev/null && apt-get install -y -qq shellcheck >/dev/null; \
		elif [ -n "$$CI" ]; then echo "lint-workflows: shellcheck is missing and cannot be installed" >&2; exit 1; \
		else echo "warning: shellcheck is not installed; the workflows' run: scripts are not checked" >&2; fi; \
	fi
	$(ACTIONLINT) -no-color .github/workflows/*.yml

SBOM_BIN ?= $(LOCALBIN)/manager
SBOM_OUT ?= $(LOCALBIN)/manager.sbom.cdx.json
.PHONY: sbom
sbom: cyclonedx-gomod ## CycloneDX SBOM (JSON) of a built manager (SBOM_BIN, default bin/manager: make build) into SBOM_OUT.
	$(CYCLONEDX_GOMOD) bin -json -std -version v$(RELEASE_VERSION) -output $(SBOM_OUT) $(SBOM_BIN)

# The release's image archive: its own file, so the dry run never replaces make image's vaultsync:dev.
RELEASE_IMAGE_ARCHIVE ?= $(LOCALBIN)/image/vaultsync-release.tar
.PHONY: release-dry-run
release-dry-run: helm ## Build what a release publishes (binaries, image archive, chart, SBOM) into bin/release/<version>; pushes nothing.
	@if [ -n "$(RELEASE_IMAGE_TARGET)" ]; then $(MAKE) --no-print-directory $(RELEASE_IMAGE_TARGET) \
		VERSION=$(RELEASE_VERSION) IMAGE_TAG=ghcr.io/vaultsync/vaultsync:$(RELEASE_VERSION) IMAGE_ARCHIVE=$(RELEASE_IMAGE_ARCHIVE); fi
	VERSION=$(RELEASE_VERSION) OUT=$(RELEASE_DIR) HELM=$(HELM) \
		IMAGE_ARCHIVE=$(if $(RELEASE_IMAGE_TARGET),$(RELEASE_IMAGE_ARCHIVE)) hack/release-dry-run.sh

##@ Tools and control plane
.PHONY: envtest-bins
envtest-bins: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd from the module proxy (cached in bin/k8s).
	K8S_VERSION=$(K8S_VERSION) BIN_DIR=$(ENVTEST_DIR) hack/build-control-plane.sh >/dev/null

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: helm
helm: $(HELM)
$(HELM):
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: actionlint
actionlint: $(ACTIONLINT)
$(ACTIONLINT):
	GOBIN=$(LOCALBIN)/.actionlint go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv $(LOCALBIN)/.actionlint/actionlint $@ && rmdir $(LOCALBIN)/.actionlint

.PHONY: cyclonedx-gomod
cyclonedx-gomod: $(CYCLONEDX_GOMOD)
$(CYCLONEDX_GOMOD):
	GOBIN=$(LOCALBIN)/.cyclonedx go install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)
	mv $(LOCALBIN)/.cyclonedx/cyclonedx-gomod $@ && rmdir $(LOCALBIN)/.cyclonedx

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

##@ Chart
# Everything below belongs to the Helm chart (charts/vaultsync) and the kubectl
# manifests (config/default); their tests live in test/chart.

.PHONY: chart-crds
chart-crds: ## Copy the generated CRDs and manager RBAC rules into the Helm chart (hack/sync-chart-crds.sh).
	hack/sync-chart-crds.sh

.PHONY: chart-lint
chart-lint: helm ## Lint the Helm chart.
	$(HELM) lint --strict charts/vaultsync

.PHONY: test-chart
test-chart: envtest-bins helm ## Chart and kustomize tests: helm lint/template/install/upgrade/uninstall, kubectl apply -k.
	go test -timeout 8m -count=1 ./test/chart/...

.PHONY: test-tools
test-tools: helm kustomize ## Install the pinned tools the tests run (helm; kustomize for users of config/).

##@ Demo and e2e
# make demo, make dev-up/dev-down (hack/demo, hack/dev) and the end-to-end suite (test/e2e, see its README).
# The demo and dev programs build the control plane, bin/manager and bin/kv-emulator themselves when needed
# (the demo only etcd, kube-apiserver and kubectl: kube-controller-manager is for the tests).
E2E_TIMEOUT ?= 5m
KIND_CLUSTER ?= kind
E2E_EMULATOR_IMG ?= vaultsync/kv-emulator:e2e

# The demo's first line (the same as hack/demo's Banner; TestBannerMatchesMakefile keeps them equal).
DEMO_BANNER := vaultsync demo: a first run on 2 cores with empty Go caches took 956 s, measured (125 s of it for kube-controller-manager, which the demo no longer builds), almost all of it building the control plane once; later runs take under a minute (22 s measured with nothing to rebuild).

.PHONY: demo
demo: ## Local demo: control plane, Key Vault emulator, operator, samples, a rotation, a push; stops everything at the end.
	@echo '$(DEMO_BANNER)'
	@start=$$(date +%s); mkdir -p $(LOCALBIN); \
		echo "==> building the demo program (go build ./hack/demo) ..."; \
		go build -o $(LOCALBIN)/vaultsync-demo ./hack/demo; \
		echo "    ok ($$(( $$(date +%s) - start ))s) [$$(( $$(date +%s) - start ))s since the start]"; \
		$(LOCALBIN)/vaultsync-demo --started-at=$$start

.PHONY: dev-up
dev-up: ## Start the demo environment in the background; prints the line to source (.dev/env). DEV_NODE=1 (root) adds the test/node agent.
	@mkdir -p $(LOCALBIN) && go build -o $(LOCALBIN)/vaultsync-dev ./hack/dev
	@$(LOCALBIN)/vaultsync-dev up

.PHONY: dev-down
dev-down: ## Stop the environment of dev-up and remove its state (safe to run twice).
	@mkdir -p $(LOCALBIN) && go build -o $(LOCALBIN)/vaultsync-dev ./hack/dev
	@$(LOCALBIN)/vaultsync-dev down

.PHONY: test-e2e
test-e2e: envtest-bins build emulator ## End-to-end suite on the built binaries and the local control plane, plus the demo and dev tests.
	E2E_MANAGER_BIN=$(LOCALBIN)/manager E2E_EMULATOR_BIN=$(LOCALBIN)/kv-emulator \
		go test -timeout $(E2E_TIMEOUT) -count=1 -v ./test/e2e/... ./hack/demo/... ./hack/dev/...

# The chart on a local node (test/node): the node agent runs the Pods with runc, one loopback-only network
# namespace each. Needs root; installs runc and iproute2 from Debian when missing. NODE_IMAGE is the OCI
# archive to run: by default the image make image builds from this tree; NODE_IMAGE= (empty) runs a stand-in
# image of the go-built manager instead, for a quick loop that skips the image build.
NODE_TIMEOUT ?= 20m
NODE_IMAGE ?= $(IMAGE_ARCHIVE)

.PHONY: test-node
test-node: envtest-bins helm $(if $(NODE_IMAGE),image) ## The chart on a local node agent (runc, root): probes, failover, events Service, upgrade, uninstall.
	@[ "$$(id -u)" = 0 ] || { echo "test-node needs root (network namespaces, mounts, runc)"; exit 1; }
	@hack/need.sh runc:runc ip:iproute2
	@[ -n "$(NODE_IMAGE)" ] || echo "test-node: NODE_IMAGE is empty; the suite runs a stand-in image of the go-built manager, not the Dockerfile's image"
	VAULTSYNC_NODE_TEST=1 VAULTSYNC_NODE_IMAGE=$(NODE_IMAGE) \
		go test -p 1 -timeout $(NODE_TIMEOUT) -count=1 -v ./test/node/...

.PHONY: test-e2e-kind
test-e2e-kind: envtest-bins helm ## The e2e suite on the current kubeconfig's kind cluster: Helm chart + emulator sidecar (needs Docker and kind).
	$(MAKE) docker-build IMG=$(IMG)
	docker build -f test/e2e/kind/emulator.Dockerfile -t $(E2E_EMULATOR_IMG) .
	kind load docker-image --name $(KIND_CLUSTER) $(IMG) $(E2E_EMULATOR_IMG)
	E2E_CLUSTER=kind IMG=$(IMG) E2E_EMULATOR_IMG=$(E2E_EMULATOR_IMG) HELM=$(HELM) \
		go test -timeout $(E2E_TIMEOUT) -count=1 -v ./test/e2e/

##@ Bench and faults
# The benchmark (test/bench, results in docs/benchmarks.md), the fault suite
# (test/faults; FAULTS_SOAK=1 adds a 10-minute soak run) and every fuzz target
# of the repository for FUZZ_TIME each.
BENCH_ARGS ?=
FAULTS_TIMEOUT ?= 15m
FUZZ_TIME ?= 5s

.PHONY: bench
bench: envtest-bins ## Benchmark on the local control plane + emulator; prints the results table (BENCH_ARGS=-large 10000 ...).
	go run ./test/bench $(BENCH_ARGS)

.PHONY: bench-admission
bench-admission: envtest-bins ## Admission only: dry-run creates of a VaultSecret vs a Secret, their ratio, CEL per status patch (3 rounds).
	go run ./test/bench -admission -rounds 3 $(BENCH_ARGS)

PROFILE_DIR ?= $(LOCALBIN)/bench-profile
.PHONY: bench-profile
bench-profile: envtest-bins ## Where the convergence time goes: CPU/heap profiles of the manager and kube-apiserver, and the apiserver's request, admission and CEL time (in $(PROFILE_DIR)).
	@mkdir -p $(PROFILE_DIR) && rm -f $(PROFILE_DIR)/*.pprof
	go run ./test/bench -refresh=false -restart=false -budget=0 -memory=false $(BENCH_ARGS) \
		-cpuprofile $(PROFILE_DIR)/manager-cpu.pprof -memprofile $(PROFILE_DIR)/manager-heap.pprof -apiserver-profile $(PROFILE_DIR)/apiserver
	@echo; echo "== manager CPU (component=manager), top 15 by cumulative time"
	@go tool pprof -top -cum -nodecount=15 -tagfocus component=manager $(PROFILE_DIR)/manager-cpu.pprof 2>/dev/null | tail -n +6
	@echo; echo "== kube-apiserver CPU, top 15 by cumulative time"
	@go tool pprof -top -cum -nodecount=15 $(PROFILE_DIR)/apiserver-cpu-*.pprof 2>/dev/null | tail -n +6
	@echo; echo "== kube-apiserver time by request, admission step and CEL"; cat $(PROFILE_DIR)/apiserver-metrics.txt

.PHONY: test-faults
test-faults: envtest-bins ## Fault suite: Key Vault, Entra ID and Kubernetes faults with continuous invariants.
	go test -timeout $(FAULTS_TIMEOUT) -count=1 -v ./test/faults/... -ginkgo.v

.PHONY: fuzz
fuzz: ## Run every fuzz target of the repository (go test -list '^Fuzz') for FUZZ_TIME each; seeds in the tests and testdata/fuzz.
	@set -e; for dir in $$(grep -rl --include='*_test.go' --exclude-dir=bin --exclude-dir=.git '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for t in $$(go test -list '^Fuzz' $$dir | grep '^Fuzz' || true); do \
			echo "fuzz $$dir $$t"; \
			go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZ_TIME) $$dir; \
		done; \
	done
