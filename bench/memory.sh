#!/usr/bin/env bash
# memory.sh: the whole appliance's memory and disk with N nodes.
#
# Builds the real binary, starts it on 127.0.0.1 with a fresh database,
# creates N nodes through the HTTP API (every other one marked for
# reinstall, then three boots each: BIOS, UEFI, BIOS, with facts), reads the
# process's peak RSS (VmHWM), stops it with SIGTERM and measures the
# database directory. Bounded: N requests x 4, one curl process, 10 minutes.
#
# Usage: bench/memory.sh [N]   (default 1000; needs go and curl)
#        BUILD=go bench/memory.sh [N]   (a plain go build instead of the release build)
#        PXE_STORE_SIZING=large bench/memory.sh [N]   (the appliance inherits PXE_* settings)
set -euo pipefail
N=${1:-1000}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
# The binary as `make build` and the Docker image ship it (static, no cgo:
# 1.4 MB less resident than a cgo build, which maps libc); BUILD=go
# measures what a plain `go build` (or the README's `go run`) makes here.
if [ "${BUILD:-release}" = go ]; then
	go build -C "$repo" -o "$work/pxe-pilot" ./cmd/pxe-pilot
else
	CGO_ENABLED=0 go build -C "$repo" -trimpath -ldflags "-s -w" -o "$work/pxe-pilot" ./cmd/pxe-pilot
fi
port=$(( 20000 + RANDOM % 20000 ))
base=http://127.0.0.1:$port
PORT=$port PXE_LISTEN_ADDR=127.0.0.1 PXE_BASE_URL=$base DATABASE_PATH="$work/db" PXE_LOG_LEVEL=warn \
	PXE_UBUNTU_KERNEL_URL=http://127.0.0.1/k PXE_UBUNTU_INITRD_URL=http://127.0.0.1/i PXE_AUTOINSTALL_URL=http://127.0.0.1/a/ \
	"$work/pxe-pilot" serve 2>"$work/log" &
pid=$!
for _ in $(seq 100); do curl -fs "$base/health" >/dev/null && break; sleep 0.1; done
# The request list, written by awk (a shell loop took minutes at 100,000).
awk -v n="$N" -v base="$base" 'BEGIN {
	for (i = 0; i < n; i++) {
		mac = sprintf("52:54:01:%02x:%02x:%02x", int(i / 65536) % 256, int(i / 256) % 256, i % 256)
		if (i % 2 == 0)
			printf "url = \"%s/nodes/%s/reinstall\"\nrequest = \"POST\"\noutput = \"/dev/null\"\nnext\n", base, mac
		split("pcbios efi pcbios", plats, " ")
		for (p = 1; p <= 3; p++)
			printf "url = \"%s/boot?mac=%s&platform=%s&serial=SN%d&manufacturer=QEMU&product=Standard%%20PC\"\noutput = \"/dev/null\"\nnext\n", base, mac, plats[p], i
	}
	printf "url = \"%s/nodes\"\noutput = \"/dev/null\"\n", base
}' >"$work/requests"
start=$(date +%s.%N)
timeout "${TIMEOUT:-600}" curl -fsS -K "$work/requests"
end=$(date +%s.%N)
nodes=$(curl -fs "$base/metrics" | awk '/^pxe_pilot_nodes\{/ {n += $2} END {print n}')
hwm=$(awk '/^VmHWM/ {print $2, $3}' /proc/$pid/status)
rss=$(awk '/^VmRSS/ {print $2, $3}' /proc/$pid/status)
# Where the resident memory is: the Go heap (anonymous) and the files Badger
# maps (its tables, logs and memtable WAL), largest mappings first.
split=$(awk '/^Rss(Anon|File|Shmem)/ {printf "%s %s kB, ", $1, $2}' /proc/$pid/status)
maps=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6); sub(".*/", "", name)} /^Rss:/ {r[name] += $2} END {for (n in r) if (r[n] >= 1024) printf "%d kB %s\n", r[n], n}' /proc/$pid/smaps | sort -rn | head -8 | paste -sd, -)
heap=$(curl -fs "$base/metrics" | awk '/^go_memstats_(heap_inuse|next_gc)_bytes / {printf "%s %.1f MiB, ", $1, $2 / 1048576}')
kill -TERM "$pid"
wait "$pid" || true
pid=
printf 'nodes %s (API says %s), %d requests in %.1f s\n' "$N" "$nodes" $((N * 3 + N / 2 + 1)) "$(awk "BEGIN{print $end - $start}")"
printf 'peak RSS (VmHWM) %s, RSS at end %s\n' "$hwm" "$rss"
printf 'at end: %s%s\nresident by mapping: %s\n' "$split" "$heap" "$maps"
printf 'database on disk after close: %s KiB (du -sk)\n' "$(du -sk "$work/db" | cut -f1)"
