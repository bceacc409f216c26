# bluegreen: a CoreDNS build with the bluegreen plugin.
GO        ?= go
BIN       := bin/coredns
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/bluegreen-dns/bluegreen/internal/build.Version=$(VERSION) -X github.com/coredns/coredns/coremain.GitCommit=$(shell git rev-parse --short HEAD 2>/dev/null)
PKGS      := ./...
FUZZTIME  ?= 10s
# The Argo Rollouts traffic-router plugin: its own Go module, so Argo's and
# Kubernetes' libraries stay out of the CoreDNS build's requirements.
ARGO_DIR  := cmd/rollouts-plugin-trafficrouter-bluegreen
ARGO_BIN  := bin/rollouts-plugin-trafficrouter-bluegreen

# The Terraform/OpenTofu provider, a module of its own (its gRPC
# dependencies stay out of the plugin's), and the OpenTofu its end-to-end
# test runs: built once into a cache outside the repository.
PROVIDER_DIR  := cmd/terraform-provider-bluegreen
PROVIDER      := bin/terraform-provider-bluegreen
TOFU_VERSION  := v1.10.10
TOFU_CACHE    ?= $(if $(shell test -w /var/cache && echo y),/var/cache/bluegreen,$(HOME)/.cache/bluegreen)
TOFU          := $(TOFU_CACHE)/tofu-$(TOFU_VERSION)/tofu

.PHONY: build coredns run test fuzz bench lint clean tofu

# Always run go build (its cache makes an unchanged build quick), so the
# version stamped in by LDFLAGS follows every commit. build makes the server,
# the Terraform/OpenTofu provider and the Argo Rollouts plugin; coredns the
# server alone (what run needs).
build: coredns
	cd $(PROVIDER_DIR) && $(GO) build -ldflags '-X main.version=$(VERSION)' -o $(CURDIR)/$(PROVIDER) .
	cd $(ARGO_DIR) && $(GO) build -ldflags '-X main.version=$(VERSION)' -o $(CURDIR)/$(ARGO_BIN) .

coredns:
	@mkdir -p $(dir $(BIN))
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/coredns

# OpenTofu's CLI for the provider's end-to-end test (a few minutes, once).
tofu:
	GO=$(GO) bash $(PROVIDER_DIR)/build-tofu.sh $(TOFU_VERSION) $(TOFU)

# Serve Corefile.example: DNS on 127.0.0.1:1053, admin API on 127.0.0.1:8053.
run: coredns
	@mkdir -p data
	./$(BIN) -conf Corefile.example

# Every test: unit, integration and end-to-end (the end-to-end tests use the
# built binary and dig; under CI=true a missing tool is a failure).
test: build tofu
	$(GO) vet $(PKGS)
	cd $(PROVIDER_DIR) && $(GO) vet ./...
	BLUEGREEN_BINARY=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 30m $(PKGS)
	cd $(PROVIDER_DIR) && BLUEGREEN_BINARY=$(CURDIR)/$(BIN) PROVIDER_BINARY=$(CURDIR)/$(PROVIDER) TOFU_BINARY=$(TOFU) \
		$(GO) test -race -count=1 -timeout 30m ./...
	cd $(ARGO_DIR) && $(GO) vet ./... && BLUEGREEN_BINARY=$(CURDIR)/$(BIN) ROLLOUTS_PLUGIN_BINARY=$(CURDIR)/$(ARGO_BIN) $(GO) test -race -count=1 -timeout 10m ./...

fuzz:
	$(GO) test ./plugin/bluegreen/ -run '^$$' -fuzz '^FuzzServeDNS$$' -fuzztime $(FUZZTIME)
	$(GO) test ./plugin/bluegreen/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./plugin/bluegreen/ -run '^$$' -fuzz '^FuzzWireSameBytes$$' -fuzztime $(FUZZTIME)
	$(GO) test ./plugin/bluegreen/admin/ -run '^$$' -fuzz '^FuzzAdminBody$$' -fuzztime $(FUZZTIME)
	$(GO) test ./plugin/bluegreen/admin/ -run '^$$' -fuzz '^FuzzAnalysisBody$$' -fuzztime $(FUZZTIME)

# Go benchmarks (selection; ServeDNS next to the file plugin), then dnsperf
# on loopback: bluegreen vs file vs whoami, and with DO on signed data
# bluegreen DO (dnssec key file) vs file DO (dnssec-signzone, same key);
# load time and RSS at 100,000 names per pool; load time and RSS with a
# 300,000- and a 1,000,000-name base and 2 and 3 one-name pools next to file
# (bench/). About 6 minutes on 2 cores; BENCHFLAGS passes options to
# bench (go run ./bench -h), e.g. BENCHFLAGS='-base-names 300000'.
bench: coredns
	@command -v dnsperf >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null; } || { echo "dnsperf missing: apt-get install dnsperf"; exit 1; }
	@command -v taskset >/dev/null || { echo "taskset missing (util-linux)"; exit 1; }
	@command -v dnssec-keygen >/dev/null && command -v dnssec-signzone >/dev/null || { echo "dnssec-keygen or dnssec-signzone missing: apt-get install bind9-utils"; exit 1; }
	$(GO) test ./plugin/bluegreen/ -run '^$$' -bench 'Select|ServeDNS' -benchmem
	$(GO) run ./bench -bin $(BIN) $(BENCHFLAGS)

lint:
	@out=$$(gofmt -s -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt -s needed: $$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd $(PROVIDER_DIR) && $(GO) vet ./...
	cd $(ARGO_DIR) && $(GO) vet ./...

clean:
	rm -rf bin

# A live blue/green demo on loopback: blue on 127.0.0.2:8000, green on
# 127.0.0.3:8000, the server on 127.0.0.1:1053 with its API on 127.0.0.1:8053,
# and clients printing blue against green per second while the README's curl
# commands move the weights. With prometheus installed it also runs one on
# 127.0.0.1:9090 for rollout analysis; DEMOFLAGS='-fail-green 0.3' makes green
# fail 30 % of its requests. Ctrl-C stops it.
.PHONY: demo
demo: coredns
	$(GO) run ./cmd/demo -coredns $(BIN) -zones demo -prometheus auto $(DEMOFLAGS)
