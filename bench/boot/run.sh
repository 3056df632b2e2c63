#!/usr/bin/env bash
# bench/boot/run.sh: GET /boot throughput and latency of the real appliance
# against a bare net/http handler that writes a script and stores nothing
# (bench/boot/bare), side by side in one run, same wrk load: 16 connections
# on 2 threads, random MACs, half known machines (KNOWN of them, created
# first), half new. Rounds alternate between the two servers so that the
# machine's other load hits both alike.
#
# Usage: bench/boot/run.sh [seconds-per-round] [rounds]   (default 10 3)
# Needs go, curl and wrk (apt-get install wrk). Loopback only; every
# process it starts is stopped by PID on exit.
set -euo pipefail
secs=${1:-10}
rounds=${2:-3}
conns=${CONNS:-16}
export KNOWN=${KNOWN:-10000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# Wait for them: removing the database under a closing store left the
	# appliance hanging in Close.
	for p in "${pids[@]}"; do timeout 30 tail --pid="$p" -f /dev/null || kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "bench/boot/run.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }
go build -C "$repo" -o "$work/pxe-pilot" ./cmd/pxe-pilot
go build -C "$repo" -o "$work/bare" ./bench/boot/bare
pp=18000 bp=18001
PORT=$pp PXE_LISTEN_ADDR=127.0.0.1 PXE_BASE_URL=http://127.0.0.1:$pp DATABASE_PATH="$work/db" PXE_LOG_LEVEL=warn \
	PXE_UBUNTU_KERNEL_URL=http://127.0.0.1/k PXE_UBUNTU_INITRD_URL=http://127.0.0.1/i PXE_AUTOINSTALL_URL=http://127.0.0.1/a/ \
	"$work/pxe-pilot" serve 2>"$work/log" &
pids+=($!)
app=$!
"$work/bare" -addr 127.0.0.1:$bp &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$pp/health" >/dev/null && curl -fs "http://127.0.0.1:$bp/boot" >/dev/null && break; sleep 0.1; done
# The known machines: boot each once (bounded: KNOWN requests).
for i in $(seq 0 $((KNOWN - 1))); do
	[ "$i" = 0 ] || echo next
	printf 'url = "http://127.0.0.1:%s/boot?mac=52:54:%02x:%02x:%02x:%02x&platform=pcbios"\noutput = "/dev/null"\n' \
		$pp $((i >> 24 & 255)) $((i >> 16 & 255)) $((i >> 8 & 255)) $((i & 255))
done >"$work/known"
timeout 300 curl -fsS -K "$work/known"
echo "# $(date -u +%FT%TZ) $(nproc) CPUs; wrk -t2 -c$conns -d${secs}s --latency, $KNOWN known machines, half the requests new MACs"
printf '%-10s %5s %12s %9s %9s %9s\n' server round req/s p50 p99 errors
for r in $(seq 1 "$rounds"); do
	for s in pxe-pilot bare; do
		port=$pp; [ $s = bare ] && port=$bp
		out=$(timeout $((secs + 30)) wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$repo/bench/boot/boot.lua" "http://127.0.0.1:$port")
		rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
		p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
		errs=$(awk '/Non-2xx|Socket errors/ {e = e $0 "; "} END {print (e == "" ? "0" : e)}' <<<"$out")
		printf '%-10s %5s %12s %9s %9s %9s\n' "$s" "$r" "$rps" "$p50" "$p99" "$errs"
	done
done
printf 'pxe-pilot peak RSS (VmHWM): %s\n' "$(awk '/^VmHWM/ {print $2, $3}' /proc/$app/status)"
