# certvault — build, run, test and benchmark.
#
#   make build   certvaultd, certvault and certvault-agent (static) into ./bin
#   make run     build, then start the embedded single-node vault (data in ./certvault-data)
#   make install install the three binaries into $(PREFIX)/bin (PREFIX=/usr/local; DESTDIR honoured)
#   make test    install what the tests need, then go vet and go test -race
#   make test-busy  make test with two CPU-hog processes beside it (RUNS=3 for three in a row)
#   make bench   benchmarks (not part of make test); JSON in bench-results/
#   make chaos   the long chaos run (root): three nodes in network namespaces under partitions,
#                pauses, kills and full disks for CHAOS_SECONDS (default 300), checked for
#                linearizability and more; CHAOS_SEED=N replays a schedule; JSON in
#                bench-results/ (docs/reliability.md); make chaos-short runs two fixed 25 s schedules
#   make fuzz    every fuzz target (func FuzzXxx) for FUZZTIME each (default 30s), stopping at
#                the first failure; make test runs their seed corpora (testdata/fuzz/) as tests
#   make demo    vault, agent and nginx end to end: a certificate rotated and served (scripts/demo.sh)
#   make package .deb packages into dist/: certvault (amd64) and certvault-agent (amd64, arm64);
#                reproducible (file times from SOURCE_DATE_EPOCH, default the commit's time)
#   make test-install  (root) build the packages, lintian, install them with dpkg, run a vault and
#                an agent from them, remove and purge (test/install_test.go; .ci/run runs it)

GO       ?= go
BIN      := bin
PREFIX   ?= /usr/local
# VERSION is what the binaries print for --version (with the commit and Go
# version they find in their build information).
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X github.com/certvault/certvault/internal/version.Version=$(VERSION) \
            -X github.com/certvault/certvault/internal/version.Commit=$(COMMIT)
PKGS     := ./...
APT_PKGS := softhsm2 nginx openssl bind9 bind9-utils curl iproute2 nodejs npm jq chromium libnss3-tools lintian systemd
# JSSDK holds the JavaScript SDK tests; JSSDK_STAMP is written once npm ci
# installed their locked packages.
JSSDK       := test/jssdk
JSSDK_STAMP := $(JSSDK)/node_modules/.npm-ci-done

.PHONY: all build install run test test-busy deps system-deps vet bench chaos chaos-short fuzz demo fmt clean package test-install

all: build

# The agent is shipped static (CGO_ENABLED=0), as test/testcluster builds it.
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/certvaultd ./cmd/certvault
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/certvault-agent

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/certvaultd $(BIN)/certvault $(BIN)/certvault-agent $(DESTDIR)$(PREFIX)/bin/

# --config= : make run is the embedded default, whatever
# /etc/certvault/certvaultd.yaml a package installed says (ARGS may name one).
run: build
	./$(BIN)/certvaultd --config= $(ARGS)

# deps installs the system packages the tests start for real (SoftHSM2,
# nginx, openssl, BIND for RFC 2136 updates, curl, iproute2 for the chaos
# run's network namespaces, Debian's nodejs and npm for the JavaScript SDK
# tests, jq for the tutorials, Chromium and NSS's certutil for the web
# console's browser tests in test/browser), lintian and systemd (for
# systemd-analyze verify) for the install test, then the npm packages of those
# tests (JSSDK_STAMP). As root it uses apt-get; otherwise it says what to run.
deps: system-deps $(JSSDK_STAMP)

system-deps:
	@missing=""; \
	command -v softhsm2-util >/dev/null 2>&1 || missing="$$missing softhsm2"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || missing="$$missing bind9 bind9-utils"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing="$$missing iproute2"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v jq >/dev/null 2>&1 || missing="$$missing jq"; \
	command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v certutil >/dev/null 2>&1 || missing="$$missing libnss3-tools"; \
	command -v lintian >/dev/null 2>&1 || missing="$$missing lintian"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing:$$missing"; \
			echo "install them with: sudo apt-get install -y$$missing"; \
			exit 1; \
		fi; \
	fi

# The JavaScript SDK tests (test/jssdk, run by test/jssdk_test.go) use the
# npm packages pinned in test/jssdk/package-lock.json. npm ci installs
# exactly those, afresh, when node_modules is missing or older than the
# lockfile; the stamp is written only when it succeeded. The Go test runs
# the same npm ci itself when the stamp is missing or stale.
$(JSSDK_STAMP): $(JSSDK)/package-lock.json $(JSSDK)/package.json | system-deps
	cd $(JSSDK) && timeout 600 npm ci --no-audit --no-fund
	touch $@

# vet lists unformatted files on stderr (not with tee /dev/stderr, which
# truncates the log of a make whose output goes to a file).
vet:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "$$unformatted" >&2; echo "gofmt needed on the files above" >&2; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags bench ./test/bench
	$(GO) vet -tags chaos ./test/chaos
	$(GO) vet -tags install ./test

test: deps vet
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# test-busy is make test on a loaded machine: HOGS busy processes (default
# 2) run beside the suite and are stopped when it ends; RUNS=3 runs it three
# times in a row. See scripts/test-busy.sh.
HOGS ?= 2
RUNS ?= 1
test-busy:
	HOGS=$(HOGS) RUNS=$(RUNS) MAKE="$(MAKE)" bash scripts/test-busy.sh

bench:
	$(GO) test -tags bench -run TestBench -count=1 -v -timeout 40m ./test/bench

# chaos is the long run of test/chaos (needs root: network namespaces,
# veth pairs, tmpfs). CHAOS_SEED replays the schedule of a failed run;
# CHAOS_NEMESES=kill-one,split limits it; CHAOSFLAGS passes more go test
# flags (e.g. -race, slower). The table is printed and the JSON written to
# bench-results/chaos-<time>.json.
CHAOS_SECONDS ?= 300
CHAOS_SEED    ?=
CHAOS_NEMESES ?=
CHAOSFLAGS    ?=
chaos:
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) CHAOS_NEMESES=$(CHAOS_NEMESES) \
		$(GO) test -tags chaos -run 'TestChaos$$' -count=1 -v -timeout 90m $(CHAOSFLAGS) ./test/chaos

# chaos-short is the two fixed 25 s schedules (about 90 s with -race).
chaos-short:
	$(GO) test -tags chaos -race -run 'TestChaosShort$$' -count=1 -v -timeout 30m $(CHAOSFLAGS) ./test/chaos

# fuzz finds the targets with go test -list, so new ones join by themselves;
# FUZZFLAGS passes more go test flags (e.g. FUZZFLAGS=-parallel=1 on a
# small shared machine). See scripts/fuzz.sh.
FUZZTIME  ?= 30s
FUZZFLAGS ?=
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZFLAGS="$(FUZZFLAGS)" bash scripts/fuzz.sh

# demo builds the three binaries into a temporary directory, runs a vault,
# an agent and nginx on free 127.0.0.1 ports, rotates a certificate and
# stops everything again; see scripts/demo.sh.
demo: system-deps
	GO=$(GO) bash scripts/demo.sh

# package builds the binaries as shipped (-trimpath, stripped, stamped
# with VERSION and COMMIT; certvaultd (cgo for PKCS#11) and the CLI as
# PIEs, the agent static, also for arm64) into DIST/build, then
# writes the .deb files with nFPM (scripts/package, internal/debpkg) and
# removes DIST/build. The same commit and SOURCE_DATE_EPOCH give the same
# bytes.
DIST              ?= dist
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
PKG_BUILD         := $(DIST)/build
PKG_GOFLAGS       := -trimpath -ldflags "-s -w $(LDFLAGS)"
package:
	rm -rf $(PKG_BUILD)
	mkdir -p $(PKG_BUILD)/amd64 $(PKG_BUILD)/arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 $(GO) build $(PKG_GOFLAGS) -buildmode=pie -o $(PKG_BUILD)/amd64/ ./cmd/certvaultd ./cmd/certvault
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build $(PKG_GOFLAGS) -o $(PKG_BUILD)/amd64/ ./cmd/certvault-agent
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(PKG_GOFLAGS) -o $(PKG_BUILD)/arm64/ ./cmd/certvault-agent
	$(GO) run ./scripts/package --describe "$(VERSION)" --commit "$(COMMIT)" --epoch "$(SOURCE_DATE_EPOCH)" \
		--bin $(PKG_BUILD) --out $(DIST)
	rm -rf $(PKG_BUILD)

# test-install is the install test (root; it refuses to run where a
# certvault package or user it did not install is present). It builds the
# packages twice (and compares them), runs lintian, installs them with dpkg,
# starts certvaultd as the unit would, joins an agent, delivers a
# certificate, then removes and purges them. About 3 minutes.
test-install: system-deps
	$(GO) test -tags install -run '^TestInstall$$' -count=1 -v -timeout 20m ./test

fmt:
	gofmt -w .

clean:
	rm -rf $(BIN) $(DIST)
