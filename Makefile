# PXE Pilot build.
#
# The release binary is static (CGO_ENABLED=0: no libc, so it runs on any
# Linux and in a distroless image), reproducible (-trimpath: no build paths),
# stripped (-s -w) and carries its version in main.version. The Dockerfile
# uses the same flags; deploy/deploy_test.go checks that the two agree.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BINARY   ?= pxe-pilot
DIST     ?= dist
PLATFORMS ?= linux/amd64 linux/arm64

# Debian's `ipxe` package (arch: all). ipxe.efi there is a symlink into
# /boot, hence cp -L.
IPXE_SRC   ?= /usr/lib/ipxe
IPXE_FILES := undionly.kpxe ipxe.efi snponly.efi

# The Secure Boot chain from Debian's shim-signed and grub-efi-amd64-signed
# (see assets/signed.go): copied as shimx64.efi and grubx64.efi. Optional:
# without them the appliance looks in Debian's paths at run time.
SHIM_SRC ?= /usr/lib/shim/shimx64.efi.signed
GRUB_SRC ?= /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed

.PHONY: all assets build build-all test deps run clean

all: build

## assets: copy Debian's iPXE builds into assets/ipxe so `go build` embeds them.
assets:
	@for f in $(IPXE_FILES); do \
		if [ ! -r "$(IPXE_SRC)/$$f" ]; then \
			echo "make assets: $(IPXE_SRC)/$$f not found; install Debian's ipxe package (apt-get install ipxe) or set IPXE_SRC=<folder with $(IPXE_FILES)>" >&2; \
			exit 1; \
		fi; \
		cp -L "$(IPXE_SRC)/$$f" "assets/ipxe/$$f" || exit 1; \
	done
	@echo "assets/ipxe: $(IPXE_FILES) copied from $(IPXE_SRC)"
	@if [ -r "$(SHIM_SRC)" ] && [ -r "$(GRUB_SRC)" ]; then \
		cp -L "$(SHIM_SRC)" assets/signed/shimx64.efi && cp -L "$(GRUB_SRC)" assets/signed/grubx64.efi && \
		echo "assets/signed: shimx64.efi, grubx64.efi copied from $(SHIM_SRC), $(GRUB_SRC)"; \
	else \
		echo "make assets: $(SHIM_SRC) or $(GRUB_SRC) not found; the Secure Boot chain is not embedded (apt-get install shim-signed grub-efi-amd64-signed, or set SHIM_SRC/GRUB_SRC)" >&2; \
	fi

## build: static binary ./pxe-pilot with the iPXE binaries embedded.
build: assets
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BINARY) ./cmd/pxe-pilot

## build-all: dist/pxe-pilot-linux-amd64, dist/pxe-pilot-linux-arm64.
build-all: assets
	@mkdir -p $(DIST)
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "building $(DIST)/$(BINARY)-$$os-$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o $(DIST)/$(BINARY)-$$os-$$arch ./cmd/pxe-pilot || exit 1; \
	done

## test: every test, as root (network namespaces, QEMU); see scripts/test.sh.
test:
	scripts/test.sh

## deps: install the Debian packages the tests use (idempotent).
deps:
	bash .ci/deps.sh

## run: build and serve HTTP on :8000 with a local database (no TFTP, no ProxyDHCP).
run: build
	PXE_TFTP_ENABLED=false PXE_DHCP_PROXY_ENABLED=false ./$(BINARY) serve

clean:
	rm -rf $(BINARY) $(DIST)
	find assets/ipxe assets/signed -type f ! -name README.md -delete
