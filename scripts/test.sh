#!/usr/bin/env bash
# The test command (README "The two commands"; .ci/run runs it too).
#
# Needs Go and root: the tests build network namespaces, bind ports 67/69 and
# run QEMU. Installs the Debian packages the tests use as real peers and
# firmware if any are missing, then runs, in order:
#   1. every package's unit and integration tests under the race detector;
#   2. real firmware (SeaBIOS + iPXE, OVMF) booting in QEMU against the real
#      binary (test/e2e, build tag e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "scripts/test.sh: run as root (the tests create network namespaces and run QEMU):" >&2
	echo "  sudo env \"PATH=\$PATH\" scripts/test.sh" >&2
	exit 1
fi
bash .ci/deps.sh
go test -race -timeout 15m ./...
go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/
