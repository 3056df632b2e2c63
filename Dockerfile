# syntax=docker/dockerfile:1
#
# PXE Pilot container image, multi-arch (linux/amd64, linux/arm64):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) -t pxe-pilot .
#
# Every build stage runs on the builder's own platform ($BUILDPLATFORM) and Go
# cross-compiles for $TARGETOS/$TARGETARCH, so an arm64 image builds at native
# speed without QEMU emulation. The iPXE binaries come from Debian's `ipxe`
# package, which is "Architecture: all" (the files are x86 and EFI firmware
# images, not programs for the build host), so one install serves every target.
#
# Privileges. The appliance runs as the distroless "nonroot" user (65532). It
# binds UDP 67 and 4011 (ProxyDHCP), UDP 69 (TFTP) and, if PORT is set so, TCP
# 80: ports below 1024 need CAP_NET_BIND_SERVICE. ProxyDHCP pins its sockets
# to one interface with SO_BINDTODEVICE, which needs CAP_NET_RAW on kernels
# before 5.7. Docker cannot give a non-root process ambient capabilities;
# `--cap-add` only widens the bounding set, which a non-root process does not
# use unless the executable carries file capabilities. So the binary gets
# them here, with setcap (an xattr that BuildKit's COPY --from keeps):
#
#   cap_net_bind_service,cap_net_raw=+ep
#
# Both are in Docker's (and containerd's) default set, so a plain
# `docker run --net=host` works. Hardened: `--cap-drop ALL --cap-add
# NET_BIND_SERVICE --cap-add NET_RAW`. Dropping either of the two makes the
# kernel refuse to start the binary ("exec /pxe-pilot: operation not
# permitted"), because a binary with the effective bit set must get all its
# file capabilities or none. CAP_NET_BROADCAST is deliberately absent: Linux
# never checks it (SO_BROADCAST needs no capability), and listing it would
# force every user to --cap-add it. `--security-opt no-new-privileges` stops
# file capabilities from being granted: do not combine it with ports < 1024.

ARG GO_VERSION=1.26

# --- iPXE and the Secure Boot chain (shim + GRUB) from Debian ----------
FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS ipxe
RUN apt-get update \
 && apt-get install -y --no-install-recommends ipxe shim-signed grub-efi-amd64-signed \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /ipxe /signed \
 && cp -L /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/snponly.efi /ipxe/ \
 && cp -L /usr/lib/shim/shimx64.efi.signed /signed/shimx64.efi \
 && cp -L /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed /signed/grubx64.efi

# --- static Go build -----------------------------------------------------
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Embedded at build time (assets/assets.go go:embeds assets/ipxe), so the
# image needs no iPXE files at run time.
COPY --from=ipxe /ipxe/ assets/ipxe/
COPY --from=ipxe /signed/ assets/signed/
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# The same flags as `make build` (see Makefile).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pxe-pilot ./cmd/pxe-pilot
RUN setcap cap_net_bind_service,cap_net_raw=+ep /out/pxe-pilot \
 && mkdir -p /out/data \
 && chown 65532:65532 /out/data

# --- runtime ---------------------------------------------------------------
# distroless/static: no shell, no package manager, no libc (the binary needs
# none), just CA certificates, tzdata and /etc/passwd with the nonroot user:
# about 2 MB under our ~16 MB binary (iPXE included). debian-slim would add
# ~75 MB and a shell that nothing here uses (the health check is the binary
# itself).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pxe-pilot /pxe-pilot
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV DATABASE_PATH=/data/pxe.db
VOLUME /data
# 8000/tcp HTTP (PORT), 69/udp TFTP, 67/udp and 4011/udp ProxyDHCP. ProxyDHCP
# only works with --net=host: DHCP broadcasts do not cross Docker's NAT.
EXPOSE 8000/tcp 69/udp 67/udp 4011/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/pxe-pilot","health"]
ENTRYPOINT ["/pxe-pilot"]
CMD ["serve"]
