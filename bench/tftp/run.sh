#!/usr/bin/env bash
# Benchmark PXE Pilot's TFTP server against Debian's tftpd-hpa, in one run,
# on 127.0.0.1: 1, 10 and 50 concurrent clients downloading undionly.kpxe
# and ipxe.efi (Debian's builds), every download checked by sha256.
#
#   bench/tftp/run.sh                 # defaults: 200 transfers per row, 60 s cap per row
#   TRANSFERS=500 MAX_TIME=30s BLKSIZE=512 bench/tftp/run.sh
#
# Needs: Go, tftpd-hpa (in.tftpd), ipxe (/usr/lib/ipxe). Bounded: each row
# stops after TRANSFERS downloads or MAX_TIME, whichever comes first.
set -euo pipefail
cd "$(dirname "$0")/../.."

TRANSFERS=${TRANSFERS:-200}
MAX_TIME=${MAX_TIME:-60s}
BLKSIZE=${BLKSIZE:-1468}
CLIENTS=${CLIENTS:-"1 10 50"}
FILES=${FILES:-"undionly.kpxe ipxe.efi"}

command -v in.tftpd >/dev/null || { echo "in.tftpd not found: apt-get install tftpd-hpa" >&2; exit 1; }
for f in $FILES; do
	[ -r "/usr/lib/ipxe/$f" ] || { echo "/usr/lib/ipxe/$f not found: apt-get install ipxe" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tftpbench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/tftpload" ./bench/tftp
mkdir "$work/root"
for f in $FILES; do cp -L "/usr/lib/ipxe/$f" "$work/root/$f"; done

port_pilot=$((20000 + RANDOM % 20000))
port_hpa=$((port_pilot + 1))

"$work/tftpload" serve -addr "127.0.0.1:$port_pilot" 2>"$work/pilot.log" &
pids+=($!)
in.tftpd --foreground --address "127.0.0.1:$port_hpa" --secure "$work/root" 2>"$work/hpa.log" &
pids+=($!)

# Wait (bounded) until both answer.
first=$(echo $FILES | cut -d' ' -f1)
for port in $port_pilot $port_hpa; do
	ok=
	for _ in $(seq 50); do
		if "$work/tftpload" load -addr "127.0.0.1:$port" -file "$first" -expect "$work/root/$first" \
			-transfers 1 -max-time 2s -label probe 2>/dev/null | awk '{exit !($4==1)}'; then
			ok=1; break
		fi
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "server on port $port did not answer" >&2; cat "$work"/*.log >&2; exit 1; }
done

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs; transfers/row=$TRANSFERS max-time/row=$MAX_TIME blksize=$BLKSIZE"
echo "# pxe-pilot = tftpsrv (pin/tftp v3.1.0), tftpd-hpa = in.tftpd $(dpkg-query -W -f='${Version}' tftpd-hpa 2>/dev/null || echo '?')"
printf "%-10s %-14s %7s %9s %6s %8s %10s %8s\n" server file clients completed failed seconds transfers/s MB/s
for f in $FILES; do
	for c in $CLIENTS; do
		for s in pxe-pilot:$port_pilot tftpd-hpa:$port_hpa; do
			"$work/tftpload" load -label "${s%%:*}" -addr "127.0.0.1:${s##*:}" -file "$f" -expect "$work/root/$f" \
				-clients "$c" -transfers "$TRANSFERS" -max-time "$MAX_TIME" -blksize "$BLKSIZE"
		done
	done
done
