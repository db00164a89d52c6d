# Sedna-Go: `make test` installs what the tests need (Debian's mosquitto and
# mosquitto-clients) when missing, vets, cross-builds sedna for ARM boards and
# runs every test with the race detector.

GO      ?= go
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: test deps vet cross build bench demo fuzz clean

test: deps vet cross
	$(GO) test -race -count=1 -timeout 20m ./...

# Debian packages the tests use: mosquitto (a real cloud broker and the
# benchmark's reference) and mosquitto-clients (mosquitto_pub/_sub as KubeEdge
# apps would use them).
deps:
	@if ! command -v mosquitto_pub >/dev/null 2>&1 || ! { [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1; }; then \
		echo "installing mosquitto and mosquitto-clients"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends mosquitto mosquitto-clients; \
	fi
	$(GO) mod download

vet:
	$(GO) vet ./...

# The edge agent runs on ARM boards: arm64, and armv7 (GOARM=7).
cross:
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna-linux-arm64 ./cmd/sedna
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna-linux-armv7 ./cmd/sedna

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sedna ./cmd/sedna

bench: build deps
	bin/sedna bench
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/

demo:
	$(GO) run ./cmd/sedna demo

fuzz:
	for f in FuzzUnmarshalEnvelope FuzzUnmarshalFrame FuzzParse FuzzMatch; do \
		$(GO) test ./topics -run '^$$' -fuzz "^$$f$$" -fuzztime 30s || exit 1; done

clean:
	rm -rf bin
