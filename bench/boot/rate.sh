#!/usr/bin/env bash
# bench/boot/rate.sh: GET /boot latency at fixed request rates (an open
# loop: requests are sent on schedule whether or not earlier ones have been
# answered, as machines powering on do), the real appliance against the bare
# net/http handler of bench/boot/run.sh, side by side in one run. run.sh
# measures the most each server does with 16 connections kept busy; this
# measures the latency a fleet sees at a given boot rate.
#
# Same requests as run.sh: random MACs, half of them known machines (KNOWN,
# created first), half new. Rates alternate between the two servers.
#
# Usage: bench/boot/rate.sh [seconds-per-rate] [rate ...]   (default 10 1000 2000 4000)
# Needs go and curl; the load generator is vegeta (github.com/tsenart/vegeta),
# built into a temporary directory from the module proxy unless it is on
# PATH. Loopback only; every process it starts is stopped by PID on exit.
set -euo pipefail
secs=${1:-10}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(1000 2000 4000)
KNOWN=${KNOWN:-10000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
case $secs in '' | *[!0-9]* | 0) echo "bench/boot/rate.sh: seconds-per-rate \"$secs\" is not a positive whole number" >&2; exit 2 ;; esac
for r in "${rates[@]}"; do
	case $r in '' | *[!0-9]*) echo "bench/boot/rate.sh: rate \"$r\" is not a whole number of requests per second" >&2; exit 2 ;; esac
	[ "$r" -le 50000 ] || { echo "bench/boot/rate.sh: rate $r is above 50000 per second; this script bounds its load" >&2; exit 2; }
done
. "$repo/bench/boot/servers.sh"
vegeta=$(command -v vegeta || true)
if [ -z "$vegeta" ]; then
	GOBIN="$work/bin" go install github.com/tsenart/vegeta/v12@v12.13.0
	vegeta=$work/bin/vegeta
fi
echo "# $(date -u +%FT%TZ) $(nproc) CPUs; vegeta, ${secs}s per rate, $KNOWN known machines, half the requests new MACs"
printf '%-10s %7s %10s %9s %9s %9s %9s %8s\n' server rate throughput p50 p90 p99 max success
run=0
for rate in "${rates[@]}"; do
	for s in pxe-pilot bare; do
		run=$((run + 1))
		port=$pp; [ $s = bare ] && port=$bp
		# rate * secs requests, every other one a new MAC never asked before
		# (numbered past the known ones by run), the others known machines.
		awk -v n=$((rate * secs)) -v known="$KNOWN" -v run=$run -v port="$port" 'BEGIN {
			srand(1000 + run)
			for (k = 0; k < n; k++) {
				i = (k % 2) ? int(rand() * known) : known + run * 16777216 + k
				printf "GET http://127.0.0.1:%s/boot?mac=52:54:%02x:%02x:%02x:%02x&platform=pcbios&buildarch=x86_64&manufacturer=QEMU\n\n", port, int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256
			}
		}' >"$work/targets"
		timeout $((secs + 60)) "$vegeta" attack -rate="$rate/s" -duration="${secs}s" -targets="$work/targets" -timeout=10s >"$work/results"
		"$vegeta" report -type=text <"$work/results" >"$work/report"
		# "Latencies     [min, mean, 50, 90, 95, 99, max]  a, b, c, d, e, f, g"
		lat=$(awk -F'  +' '/^Latencies/ {print $3}' "$work/report" | tr -d ',')
		read -r _ _ p50 p90 _ p99 max <<<"$lat"
		achieved=$(awk -F'  +' '/^Requests/ {split($3, a, ", "); print a[3]}' "$work/report")
		success=$(awk '/^Success/ {print $NF}' "$work/report")
		printf '%-10s %7s %10s %9s %9s %9s %9s %8s\n' "$s" "$rate" "$achieved" "$p50" "$p90" "$p99" "$max" "$success"
	done
done
printf 'pxe-pilot peak RSS (VmHWM): %s\n' "$(awk '/^VmHWM/ {print $2, $3}' /proc/$app/status)"
