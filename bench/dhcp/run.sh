#!/bin/bash
# run.sh: ProxyDHCP load benchmark, PXE Pilot's dhcpproxy against dnsmasq
# in proxy mode, on the same packets, in one run.
#
# Builds a LAN from network namespaces (a bridge; "server" 203.0.113.2 and
# "client" 203.0.113.50, TEST-NET-3), runs each server in turn in the server
# namespace and bench/dhcp/load in the client namespace: -n distinct MACs
# (default 10000), at most WINDOW discovers in flight, every run bounded by
# -max. ROUNDS (default 3) alternates the two servers, to show the noise of
# a shared machine. Prints one table row per server and round.
#
# Needs root, iproute2, dnsmasq, Go. Usage: sudo [ROUNDS=3] [ARCH=0|7] bench/dhcp/run.sh [N] [WINDOW]
set -euo pipefail
N=${1:-10000}
WINDOW=${2:-64}
ARCH=${ARCH:-0}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
p=pxb$$
lan=$p-lan srv=$p-srv cli=$p-cli
pids=()
stop() { # stop PID: TERM, then wait until it is gone or a zombie
	kill "$1" 2>/dev/null || true
	for _ in $(seq 100); do
		st=$(awk '/^State:/{print $2}' /proc/$1/status 2>/dev/null || true)
		[ -z "$st" ] || [ "$st" = Z ] && break
		sleep 0.05
	done
	wait "$1" 2>/dev/null || true
}
cleanup() {
	for pid in "${pids[@]}"; do stop "$pid"; done
	for ns in $cli $srv $lan; do ip netns del $ns 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/pxeproxy" ./bench/dhcp/pxeproxy && go build -o "$work/load" ./bench/dhcp/load)

for ns in $lan $srv $cli; do ip netns add $ns; ip -n $ns link set lo up; done
ip -n $lan link add br0 type bridge
ip -n $lan link set br0 up
for h in srv:203.0.113.2 cli:203.0.113.50; do
	name=${h%%:*} addr=${h#*:}
	ip -n $lan link add p$name type veth peer name eth0 netns $p-$name
	ip -n $lan link set p$name master br0
	ip -n $lan link set p$name up
	ip -n $p-$name addr add $addr/24 dev eth0
	ip -n $p-$name link set eth0 up
done

# waitport NS PORT: until something listens on UDP PORT in NS (bounded).
waitport() {
	for _ in $(seq 100); do
		ip netns exec "$1" ss -Hlun "sport = :$2" | grep -q . && return 0
		sleep 0.05
	done
	echo "nothing listens on UDP $2 in $1" >&2
	return 1
}

load() { ip netns exec $cli "$work/load" -interface eth0 -server 203.0.113.2 -n "$N" -window "$WINDOW" -arch "$ARCH" -label "$1"; }

results=()
for round in $(seq "${ROUNDS:-3}"); do
ip netns exec $srv "$work/pxeproxy" -interface eth0 -base-url http://203.0.113.2:8000 2>"$work/pxeproxy.log" &
pid=$!; pids+=($pid)
waitport $srv 67
results+=("$(load pxe-pilot)")
stop $pid

ip netns exec $srv dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=eth0 --bind-interfaces \
	--dhcp-range=203.0.113.0,proxy --pxe-service=x86PC,"PXE",undionly.kpxe \
	--pxe-service=x86-64_EFI,"PXE",ipxe.efi --dhcp-leasefile=/dev/null --pid-file= 2>"$work/dnsmasq.log" &
pid=$!; pids+=($pid)
waitport $srv 67
results+=("$(load dnsmasq-proxy)")
stop $pid
done

echo "ProxyDHCP benchmark: $N distinct MACs, window $WINDOW, arch $ARCH, ${ROUNDS:-3} rounds, $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %8s %8s %6s %9s %10s %10s %10s\n' server sent offers lost elapsed offers/s p50 p99
for r in "${results[@]}"; do
	eval "$(echo "$r" | tr ' ' '\n' | sed 's/^/r_/')"
	printf '%-14s %8s %8s %6s %9s %10s %10s %10s\n' "$r_server" "$r_sent" "$r_offers" "$r_lost" "$r_elapsed" "$r_offers_per_s" "$r_p50" "$r_p99"
done
