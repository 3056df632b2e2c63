#!/usr/bin/env bash
# Installs the Debian packages the tests use as real peers and firmware:
# QEMU + SeaBIOS/iPXE ROMs + OVMF (end-to-end boots), iPXE binaries, dnsmasq
# (router and ProxyDHCP reference), tftpd-hpa/tftp-hpa/atftp (TFTP peers and
# benchmark reference), a kernel + busybox + cpio (test initramfs), tcpdump
# (pcaps), nmap (independent DHCP client), promtool (metrics lint),
# systemd-analyze (unit check), iproute2 + util-linux (namespaces), curl
# (TFTP client), libcap2-bin (setcap for the non-root image test), chromium
# (the web console tests drive it headless), debian-installer-12-netboot-amd64
# (a real installer, d-i, for the e2e profile scenarios), shim-signed +
# grub-efi-amd64-signed (the Secure Boot chain the appliance serves;
# OVMF_CODE_4M.ms.fd from ovmf enforces Secure Boot), e2fsprogs + mount
# (an ext2 loop device whose write-back fails, for the store's fsync test),
# grub-efi-amd64-bin + gcc (Debian's GRUB module linux.mod, linked into a
# small program, tells what command line GRUB gives the kernel).
# Idempotent: it installs only what is missing.
set -euo pipefail
pkgs=(qemu-system-x86 seabios ipxe-qemu ipxe ovmf shim-signed grub-efi-amd64-signed dnsmasq-base tftpd-hpa tftp-hpa atftp
  busybox-static cpio linux-image-amd64 tcpdump nmap prometheus iproute2 procps
  kmod systemd dosfstools mtools git make ca-certificates curl libcap2-bin util-linux
  chromium debian-installer-12-netboot-amd64 e2fsprogs mount grub-efi-amd64-bin gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all Debian packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}; run as root (sudo) to install them" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# tftpd-hpa's postinst tries to start a service; no init system in CI is fine.
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" \
  || apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 -f
# A TFTP daemon started by the package would hold port 69 on the host.
pkill -x in.tftpd 2>/dev/null || true
