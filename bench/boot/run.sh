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
command -v wrk >/dev/null || { echo "bench/boot/run.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }
. "$repo/bench/boot/servers.sh"
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
