# kernelgate — see README.md. `make run` serves; `make test` runs every test.

GO        ?= go
BIN       := bin/kernelgate
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Debian packages the tests and `make run` need: the kernels, the Python
# reference client used for interop checks, Jupyter Server and Notebook 6
# for the end-to-end tests in gateway mode, and Chromium to drive Notebook 6.
APT_PACKAGES := python3-ipykernel python3-jupyter-client python3-jupyter-server python3-notebook chromium openssh-server openssh-client python3-pycryptodome haproxy
# JupyterHub 3.0 (with Debian's configurable-http-proxy) for the identity tests.
APT_PACKAGES += jupyterhub
# Python's Kubernetes client, Jinja2 and PyYAML for the argv launch of
# Kubernetes kernels (actors/proxy/kubernetes/testdata/launch_kubernetes.py).
APT_PACKAGES += python3-kubernetes python3-jinja2 python3-yaml
# The npm project of the JavaScript clients (@jupyterlab/services,
# puppeteer-core) the end-to-end tests drive with Node.
CLIENTS := http/testdata/clients
FUZZTIME  ?= 30s

.PHONY: all run build test e2e bench ha-bench bench-go lint fuzz deps k8s-tools clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kernelgate

# make run turns kernel listing on (Jupyter Server's gateway client polls
# GET /api/kernels and breaks on EG's default 403) and clears EG's default
# unauthorized user (root), so a developer's root shell can start kernels.
run: deps build
	$(BIN) serve --ip 127.0.0.1 --port 8888 --list-kernels --unauthorized-users "" --log-format console

# KERNELGATE_REQUIRE_K8S=1: the Kubernetes tests fail, not skip, without
# the programs k8s-tools builds.
test: deps k8s-tools deploy-deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	KERNELGATE_REQUIRE_K8S=1 $(GO) test -race -count=1 -timeout 15m ./...

# The end-to-end suite alone: real clients (Jupyter Server and Notebook 6 in
# gateway mode, @jupyterlab/services on Node, Notebook 6, the dashboard and
# a bench report in headless Chromium) against an in-process gateway;
# screenshots go to e2e-artifacts/. `make test` runs it too.
e2e: deps
	mkdir -p e2e-artifacts
	$(GO) test -race -count=1 -run 'E2E' -artifacts -outputdir $(CURDIR)/e2e-artifacts ./http ./bench

# make bench runs `kernelgate bench` against kernelgate, the limit (no
# gateway) and Jupyter Server side by side; reports go to $(BENCH_OUT).
# BENCH_QUICK=1 makes it a short smoke run. bench-go runs the Go
# micro-benchmarks.
BENCH_OUT ?= bench-results
bench: deps build
	bench/run.sh $(BIN) $(BENCH_OUT)

# make ha-bench: a replica group (HA_REPLICAS, default 2) behind HAProxy
# against one gateway, and the failover after a replica's SIGKILL.
ha-bench: deps build
	bench/ha.sh $(BIN) $(BENCH_OUT)/ha

bench-go: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...; \
	else echo "staticcheck could not be fetched from the module proxy; skipped"; fi

# Each fuzz target runs for FUZZTIME; their seed corpora also run in `make test`.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./zmq
	$(GO) test -run '^$$' -fuzz '^FuzzScanHeader$$' -fuzztime $(FUZZTIME) ./zmq
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./kernelspecs
	$(GO) test -run '^$$' -fuzz '^FuzzV1Decode$$' -fuzztime $(FUZZTIME) ./http/framing
	$(GO) test -run '^$$' -fuzz '^FuzzLegacyDecode$$' -fuzztime $(FUZZTIME) ./http/framing
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./actors/proxy/remote
	$(GO) test -run '^$$' -fuzz '^FuzzClientEnv$$' -fuzztime $(FUZZTIME) ./actors/admission
	$(GO) test -run '^$$' -fuzz '^FuzzRequestBodies$$' -fuzztime $(FUZZTIME) ./http
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./actors/proxy/kubernetes/podtemplate
	$(GO) test -run '^$$' -fuzz '^FuzzYAMLSafeRoundTrip$$' -fuzztime $(FUZZTIME) ./actors/proxy/kubernetes/podtemplate

# docs regenerates docs/configuration.md from the settings in cmd/kernelgate
# (TestConfigurationDocIsGenerated fails when they differ).
.PHONY: docs
docs:
	$(GO) run ./cmd/kernelgate serve --help-markdown > docs/configuration.md.tmp && mv docs/configuration.md.tmp docs/configuration.md

# k8s-tools builds the Kubernetes programs internal/k8stest runs (pinned in
# the separate module tools/k8s) into tools/bin: about 9 minutes on 2 cores
# the first time, nothing while they are newer than tools/k8s/go.sum.
k8s-tools:
	GO=$(GO) tools/k8s/build.sh

# Dex, the OpenID Connect provider the identity tests run (internal/oidctest),
# built from the Go module proxy in a module of its own (tools/dex) so that
# none of its dependencies enter kernelgate's go.mod; rebuilt only when
# tools/dex/go.mod or go.sum change. No cgo: the tests use Dex's in-memory
# storage, not its sqlite. `make test` needs it and fails, rather than skips,
# the identity tests (JupyterHub's too) when a tool is missing.
DEX := tools/bin/dex
.PHONY: dex-tools
dex-tools: $(DEX)
$(DEX): tools/dex/go.mod tools/dex/go.sum
	cd tools/dex && CGO_ENABLED=0 $(GO) build -trimpath -o ../bin/dex github.com/dexidp/dex/cmd/dex
test: dex-tools
test: export KERNELGATE_REQUIRE_IDENTITY := 1
test: export KERNELGATE_REQUIRE_DEPLOY := 1

# apt_install installs the Debian packages of $(1) that are missing; silent
# when all are there.
define apt_install
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "kernelgate: missing Debian packages:$$missing" >&2; \
			echo "kernelgate: run 'sudo make $@' (or apt-get install -y$$missing) and try again" >&2; exit 1; \
		fi; \
		echo "kernelgate: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

# deps installs the Debian packages that are missing; silent when all are there.
deps:
	$(call apt_install,$(APT_PACKAGES))
	@command -v npm >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "kernelgate: Node.js and npm are missing: sudo make deps" >&2; exit 1; fi; \
		echo "kernelgate: installing nodejs npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	@if [ ! -f $(CLIENTS)/node_modules/.package-lock.json ] || [ $(CLIENTS)/package-lock.json -nt $(CLIENTS)/node_modules/.package-lock.json ]; then \
		echo "kernelgate: npm ci in $(CLIENTS)"; cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

# Images (deploy/images.sh): podman builds them (buildah works too), and
# debootstrap makes the kernel image's Debian base; systemd-analyze checks
# the unit in deploy/systemd. No container registry is used.
DEPLOY_APT_PACKAGES := podman debootstrap systemd
.PHONY: deploy-deps images chart-check
deploy-deps:
	$(call apt_install,$(DEPLOY_APT_PACKAGES))

# images builds localhost/kernelgate:$(VERSION) and
# localhost/kernelgate-kernel-py:$(VERSION) (TAG=… to tag otherwise); the
# first build makes the kernel image's base with debootstrap (about 4
# minutes, cached in ~/.cache/kernelgate), later ones take seconds.
images: deploy-deps
	VERSION=$(VERSION) GO=$(GO) deploy/images.sh

# chart-check lints the Helm chart, renders it with each of
# deploy/helm/kernelgate/ci/*.yaml, applies every rendered object to a real
# API server (server-side dry run, internal/k8stest) and installs the chart
# there for real (TestChart in ./deploy). `make test` runs the same tests.
chart-check: k8s-tools
	tools/bin/helm lint --strict deploy/helm/kernelgate
	@for f in deploy/helm/kernelgate/ci/*.yaml; do \
		echo "helm lint --strict -f $$f"; tools/bin/helm lint --strict --quiet deploy/helm/kernelgate -f $$f || exit 1; \
	done
	KERNELGATE_REQUIRE_K8S=1 $(GO) test -count=1 -run 'TestChart' -v ./deploy

clean:
	rm -rf bin $(BENCH_OUT) e2e-artifacts
