# Sedna-Go: `make test` installs what the tests need (Debian packages, Go
# modules) when missing, checks gofmt and vets, cross-builds sedna for ARM boards, checks the
# committed WASM modules against their sources and runs every test with the
# race detector.

GO      ?= go
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the build's: the same commit builds the same bytes.
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
DIST    ?= bin/dist

.PHONY: test deps vet cross arm-store build bench demo fuzz clean onnxruntime onnx onnx-arm64 arm-onnx release

# The suite runs with the build tag onnx (ONNX models through ONNX Runtime,
# whose library make onnxruntime installs in bin/), and ml/onnx once more
# without it (and paradigm, which loads models): the pure-Go binary's
# one-line refusal of ONNX models.
test: deps vet cross wasm-check arm-store onnxruntime arm-onnx release
	SEDNA_ONNXRUNTIME=$(CURDIR)/bin/libonnxruntime.so.1 $(GO) test -race -count=1 -tags onnx -timeout 20m ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./ml/onnx/ ./paradigm/
	CGO_ENABLED=0 $(GO) test -count=1 -run '^TestModelInspectAndExport$$' ./cmd/sedna/

# Debian packages the tests use: mosquitto (a real cloud broker and the
# benchmark's reference), mosquitto-clients (mosquitto_pub/_sub as KubeEdge
# apps would use them), clang, lld, wasi-libc and libclang-rt-14-dev-wasm32
# (C plugins), dataset-fashion-mnist (the full Fashion-MNIST loader's test),
# iproute2 (the README's test brings up loopback in a network namespace),
# python3-numpy (NumPy reads the arrays handed to external workers),
# python3-torch (trains the example CNN exported to ONNX; its check) and
# python3-onnx (the PyTorch incremental trainer reads the ONNX model it tunes),
# python3-msgpack and python3-paho-mqtt (the Python worker library, sdk/python),
# gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (sedna-onnx for arm64
# boards is built with cgo, and its tests run under qemu-aarch64),
# qemu-user (armv7 and arm64 test binaries run under qemu-arm and
# qemu-aarch64: emulated boards), openssh-server (sedna hil deploys to
# boards over SSH, tested against a real sshd on loopback), systemd
# (systemd-analyze verifies the units: sedna hil's and deploy/'s;
# systemd-sysusers the user), chromium and fonts-liberation (the cloud's
# dashboard is loaded and photographed in headless Chromium),
# rabbitmq-server, etcd-server and etcd-client (the cloud tier's test
# cluster: three RabbitMQ nodes with the MQTT plugin and three etcd members
# on loopback, deploy/testcluster/cluster.sh; docs/SCALE.md).
DEB_PKGS := mosquitto mosquitto-clients clang lld wasi-libc libclang-rt-14-dev-wasm32 dataset-fashion-mnist iproute2 python3-numpy python3-torch python3-msgpack python3-paho-mqtt python3-onnx gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user openssh-server systemd chromium fonts-liberation rabbitmq-server etcd-server etcd-client
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(GO) mod download

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -w these files:" $$unformatted; exit 1; fi
	$(GO) vet ./...

# The edge agent runs on ARM boards: arm64, and armv7 (GOARM=7).
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna-linux-arm64 ./cmd/sedna
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna-linux-armv7 ./cmd/sedna

# 32-bit boards keep their data in the Bolt store: its conformance suite,
# reopen after SIGKILL included, runs as an armv7 binary under qemu-arm.
arm-store:
	GOOS=linux GOARCH=arm GOARM=7 $(GO) test -c -o bin/store-armv7.test ./store
	cd bin && STORETEST_EXEC=qemu-arm qemu-arm ./store-armv7.test -test.run '^TestBolt' -test.count 1

# ONNX Runtime for ONNX models (ml/onnx): the shared library of the release
# onnxruntime_go v1.27.0 pairs with, as npm's onnxruntime-node ships it for
# linux x64 and arm64. npm pack fetches the tarball without running its
# install script (which would download CUDA); its sha512 is pinned here.
# bin/libonnxruntime.so.1 is this machine's (beside bin/sedna-onnx, where
# sedna-onnx looks first), bin/linux-arm64/ the boards'.
ORT_VERSION := 1.24.3
ORT_SHA512  := 247efe7336dcf002c0f35f6f95381c57e436d78ffe56319e0470e35fcd7e6420f43c254220518536d4f4578b171bfd495f2a4a3e049c41c0778a3fe19376274e
ORT_HOST    := $(shell uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')
onnxruntime: bin/libonnxruntime.so.1
bin/libonnxruntime.so.1:
	@mkdir -p bin/ort-pack bin/linux-arm64
	cd bin/ort-pack && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null
	echo "$(ORT_SHA512)  bin/ort-pack/onnxruntime-node-$(ORT_VERSION).tgz" | sha512sum -c --quiet
	tar -xzf bin/ort-pack/onnxruntime-node-$(ORT_VERSION).tgz -C bin/ort-pack \
		package/bin/napi-v6/linux/x64/libonnxruntime.so.1 package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
	mv bin/ort-pack/package/bin/napi-v6/linux/arm64/libonnxruntime.so.1 bin/linux-arm64/
	mv bin/ort-pack/package/bin/napi-v6/linux/$(ORT_HOST)/libonnxruntime.so.1 $@
	rm -rf bin/ort-pack

# sedna with ONNX Runtime (cgo, dlopen at run time): bin/sedna-onnx, which
# finds bin/libonnxruntime.so.1 beside it.
onnx: onnxruntime
	CGO_ENABLED=1 $(GO) build -tags onnx -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna-onnx ./cmd/sedna

# sedna-onnx for arm64 boards: cgo with Debian's cross compiler; it loads
# libonnxruntime.so.1 beside it: copy bin/linux-arm64/libonnxruntime.so.1
# to the board with it, in the same directory.
onnx-arm64: onnxruntime
	CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc GOOS=linux GOARCH=arm64 $(GO) build -tags onnx -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna-onnx-linux-arm64 ./cmd/sedna

# ONNX Runtime's arm64 build from npm, run by ml/onnx's tests compiled for
# arm64 under qemu-aarch64 (numbers, the committed CNN's accuracy, refusals).
arm-onnx: onnxruntime
	CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc GOOS=linux GOARCH=arm64 $(GO) test -c -tags onnx -o bin/onnx-arm64.test ./ml/onnx
	cd bin && SEDNA_ONNXRUNTIME=$(CURDIR)/bin/linux-arm64/libonnxruntime.so.1 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu \
		qemu-aarch64 ./onnx-arm64.test -test.count 1 -test.run '^(TestCommittedCNN|TestDenseMatchesGo|TestRefusedModels|TestExportTwin|TestDynamicShapeDeclared)$$'

# Static binaries: no libc to load (2 MB less resident per process, see
# docs/BENCHMARKS.md) and nothing to install on a board.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna ./cmd/sedna

# Release archives for linux amd64, arm64 and armv7: the stamped binary,
# the systemd units and the sysusers entry, the README and the licence,
# with their SHA-256 sums; each binary (the ARM ones under qemu) must say
# the commit it was built from.
release: build cross
	rm -rf $(DIST) && mkdir -p $(DIST)
	set -e; for a in amd64:bin/sedna: arm64:bin/sedna-linux-arm64:qemu-aarch64 armv7:bin/sedna-linux-armv7:qemu-arm; do \
		arch=$${a%%:*}; rest=$${a#*:}; bin=$${rest%%:*}; run=$${rest#*:}; \
		$$run $$bin version | grep -q "commit $(COMMIT)," || { echo "$$bin does not say commit $(COMMIT): $$($$run $$bin version)"; exit 1; }; \
		d=$(DIST)/sedna_$(VERSION)_linux_$$arch; mkdir -p $$d; \
		cp $$bin $$d/sedna; cp deploy/systemd/sedna-edge.service deploy/systemd/sedna-cloud.service deploy/systemd/sedna.sysusers README.md LICENSE $$d/; \
		tar -C $(DIST) -czf $$d.tar.gz sedna_$(VERSION)_linux_$$arch; rm -rf $$d; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS && cat SHA256SUMS

bench: build deps
	bin/sedna bench
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/

demo:
	$(GO) run ./cmd/sedna demo

# Every decoder of bytes from outside the process, fuzzed for FUZZTIME each
# (package:target). A crasher is kept by Go under the package's
# testdata/fuzz/TARGET/ and runs as a test from then on: commit it with its
# fix. docs/SECURITY.md has the last campaign's figures.
FUZZTIME ?= 3m
FUZZ_TARGETS := topics:FuzzUnmarshalEnvelope topics:FuzzUnmarshalFrame topics:FuzzCheckMsgpack topics:FuzzDecodeBody \
	topics:FuzzParse topics:FuzzMatch api:FuzzParse broker:FuzzPacketGuard jointinference:FuzzDecodeRequest \
	federated:FuzzWorkerMessages ml:FuzzUnmarshal plugins/abi:FuzzDecode plugins/abi:FuzzParseRequest
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; f=$${t#*:}; echo "== ./$$pkg $$f ($(FUZZTIME))"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done

clean:
	rm -rf bin

# The WASM plugins written in C, built by `sedna plugin build` itself: the
# built-ins (embedded in sedna), the C example and the hostile test plugins.
# Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (make deps
# installs them). The .wasm files are committed so that a fresh clone needs
# only Go; wasm-check fails when one differs from what its source gives.
WASM_DIRS := examples/plugins/c-maxprob $(wildcard plugins/testdata/hostile/*/)
WASM_DIRS := $(filter-out %/gobad/,$(WASM_DIRS))

.PHONY: wasm wasm-check
wasm:
	$(GO) build -o bin/sedna-host ./cmd/sedna
	bin/sedna-host plugin build plugins/builtin/src -o plugins/builtin/builtins.wasm
	@for d in $(WASM_DIRS); do bin/sedna-host plugin build $$d || exit 1; done

wasm-check:
	@$(GO) build -o bin/sedna-host ./cmd/sedna
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	bin/sedna-host plugin build plugins/builtin/src -o $$tmp/builtins.wasm >/dev/null || exit 1; \
	cmp -s $$tmp/builtins.wasm plugins/builtin/builtins.wasm || { echo "plugins/builtin/builtins.wasm differs from its source: run make wasm and commit"; exit 1; }; \
	for d in $(WASM_DIRS); do d=$${d%/}; n=$$(basename $$d); \
		bin/sedna-host plugin build $$d -o $$tmp/$$n.wasm >/dev/null || exit 1; \
		cmp -s $$tmp/$$n.wasm $$d/$$n.wasm || { echo "$$d/$$n.wasm differs from its source: run make wasm and commit"; exit 1; }; \
	done; echo "wasm: every committed module matches its source"
