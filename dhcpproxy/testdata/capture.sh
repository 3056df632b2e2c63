#!/bin/bash
# capture.sh: record the DHCP packets real firmware sends, for the fixtures
# in this directory. Runs QEMU's iPXE e1000 ROM (BIOS, SeaBIOS) and OVMF with
# EDK2's own network stack (virtio-net, empty romfile) on a bridge inside a
# network namespace of its own, with a plain dnsmasq as the router (no PXE
# options), and writes everything on UDP 67/68/4011 to $1 (pcap).
#
# With PXEPROXY=<path to a pxeproxy binary> (go build ../../bench/dhcp/pxeproxy)
# our ProxyDHCP server runs on the bridge too (as 203.0.113.1, next to the
# router), so the capture also holds the firmware's port-4011 request and its
# TFTP read request: the proof that real firmware takes our offers.
#
# Needs root, qemu-system-x86, ipxe-qemu, ovmf, dnsmasq, tcpdump.
# Usage: sudo [PXEPROXY=/tmp/pxeproxy] ./capture.sh out.pcap [seconds]
set -euo pipefail
out=$(realpath -m "${1:?usage: capture.sh out.pcap [seconds]}")
secs=${2:-150}
ns=pxcap$$
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do
			st=$(awk '/^State:/{print $2}' /proc/$p/status 2>/dev/null || true)
			[ -z "$st" ] || [ "$st" = Z ] && break
			sleep 0.1
		done
	done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
x() { ip netns exec "$ns" "$@"; }
x ip link set lo up
x ip link add br0 type bridge
x ip addr add 203.0.113.1/24 dev br0
for t in tap0 tap1; do
	x ip tuntap add dev $t mode tap
	x ip link set $t master br0
	x ip link set $t up
done
x ip link set br0 up
x tcpdump --immediate-mode -i br0 -U -w "$out" 'udp and (port 67 or port 68 or port 4011 or port 69)' 2>"$work/tcpdump.log" &
pids+=($!)
x dnsmasq --no-daemon --no-ping --conf-file=/dev/null --interface=br0 --bind-interfaces \
	--dhcp-range=203.0.113.100,203.0.113.200,1m --port=0 --pid-file="$work/dnsmasq.pid" \
	--log-dhcp 2>"$work/dnsmasq.log" &
pids+=($!)
if [ -n "${PXEPROXY:-}" ]; then
	x "$PXEPROXY" -interface br0 -base-url http://203.0.113.1:8000 -debug 2>"${out%.pcap}.proxy.log" &
	pids+=($!)
fi
sleep 1
accel=tcg
# BIOS: SeaBIOS + iPXE e1000 ROM (ipxe-qemu). Sends user class "iPXE", arch 0.
x qemu-system-x86_64 -accel $accel -m 256 -display none -serial null -monitor none \
	-netdev tap,id=n,ifname=tap0,script=no,downscript=no \
	-device e1000,netdev=n,mac=52:54:00:12:00:01 -boot n &
pids+=($!)
# UEFI: OVMF with EDK2's PXE (arch 7) then HTTP Boot (arch 16).
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
x qemu-system-x86_64 -accel $accel -m 512 -display none -serial null -monitor none \
	-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
	-drive if=pflash,format=raw,file="$work/vars.fd" \
	-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=no \
	-fw_cfg name=opt/org.tianocore/IPv6Support,string=no \
	-netdev tap,id=n,ifname=tap1,script=no,downscript=no \
	-device virtio-net-pci,netdev=n,romfile=,mac=52:54:00:12:00:02 -boot n &
pids+=($!)
sleep "$secs"
echo "captured $(tcpdump -r "$out" 2>/dev/null | wc -l) packets into $out"
