#!/usr/bin/env bash
# What does real firmware do when its TFTP request gets no answer, or an
# ERROR? The measurement behind the table in tftpsrv/doc.go.
#
#   bench/tftp/firmware/run.sh bios silent     # SeaBIOS + QEMU's e1000 iPXE ROM
#   bench/tftp/firmware/run.sh uefi error:1    # OVMF, EDK2's own PXE (virtio-net, no ROM)
#
# A fresh network namespace with one tap (198.51.100.1/24), dnsmasq for
# DHCP (next-server + file), rrqlog on port 69, and QEMU (TCG) booting from
# the network for SECS seconds (default 60). Prints rrqlog's lines and the
# firmware's console lines about TFTP. Needs root, qemu-system-x86,
# ovmf, ipxe-qemu, dnsmasq. Bounded by SECS; everything started is stopped
# and the namespace deleted on exit.
set -euo pipefail
fw=${1:?bios or uefi} mode=${2:?silent or error:N} secs=${SECS:-60}
cd "$(dirname "$0")/../../.."
work=$(mktemp -d /tmp/tftpfw.XXXXXX)
ns=tftpfw-$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/rrqlog" ./bench/tftp/firmware

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add 198.51.100.1/24 dev tap0
ip -n "$ns" link set tap0 up
file=undionly.kpxe
[ "$fw" = uefi ] && file=ipxe.efi
ip netns exec "$ns" dnsmasq --no-daemon --port=0 --interface=tap0 --bind-interfaces --no-ping \
	--dhcp-range=198.51.100.50,198.51.100.60,1h --dhcp-boot="$file,,198.51.100.1" \
	--dhcp-leasefile="$work/leases" --pid-file= 2>"$work/dnsmasq.log" &
pids+=($!)
ip netns exec "$ns" "$work/rrqlog" -addr 198.51.100.1:69 -mode "$mode" -for "${secs}s" >"$work/rrq.log" 2>&1 &
pids+=($!)

printf '\xf8\x03' >"$work/sercon.bin" # SeaBIOS: copy the console to serial
common=(-accel tcg -display none -serial "file:$work/serial.log" -no-reboot
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no)
if [ "$fw" = bios ]; then
	ip netns exec "$ns" timeout "$secs" qemu-system-x86_64 "${common[@]}" -m 256 -boot n \
		-fw_cfg name=etc/sercon-port,file="$work/sercon.bin" -device e1000,netdev=n0 >/dev/null 2>&1 || true
else
	cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
	ip netns exec "$ns" timeout "$secs" qemu-system-x86_64 "${common[@]}" -m 512 \
		-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
		-drive if=pflash,format=raw,file="$work/vars.fd" \
		-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=no \
		-fw_cfg name=opt/org.tianocore/IPv6Support,string=no \
		-device virtio-net-pci,netdev=n0,romfile= >/dev/null 2>&1 || true
fi
sleep 1
echo "== $fw, server $mode"
cat "$work/rrq.log"
echo "== console"
tr -d '\r' <"$work/serial.log" | grep -a -E 'tftp://|PXE-E|NBP|Connection timed out|No such file|not supported' || true
