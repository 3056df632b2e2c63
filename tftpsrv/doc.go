// Package tftpsrv is PXE Pilot's read-only TFTP server: it hands PXE
// firmware the iPXE binaries and two generated iPXE scripts, all from
// memory, and breaks the boot loop of routers that can only say "TFTP
// server + file name".
//
// What is served. Exactly the names PXE Pilot knows: the iPXE builds found
// at start-up (undionly.kpxe, ipxe.efi, snponly.efi, ipxe-arm64.efi) and
// boot.ipxe / autoexec.ipxe, rendered once at New from PXE_BASE_URL, and
// Config.Files: the Secure Boot chain (shimx64.efi, grubx64.efi) and
// GRUB's grub.cfg under its built-in prefix ("/grub/grub.cfg"), the only
// names served with a folder part (exact keys, see files.go), plus one
// generated folder (Config.Generate: GRUB's per-machine script
// /grub/node/<MAC> and the installer files it relays). Measured reads of
// the chain, in order (OVMF, Debian's shim 16.1 and GRUB 2.06-13):
// shimx64.efi (size probe, then the file), revocations_sku.efi,
// revocations_sbat.efi, shim_certificate_0.efi (optional, "not found"),
// grubx64.efi (blksize 512), then GRUB with blksize 1024 and a leading
// slash: /grub/x86_64-efi/command.lst, fs.lst, crypto.lst, terminal.lst
// (not found: built in), /grub/grub.cfg, then what grub.cfg names. GRUB
// asks the router's next-server (siaddr), not the ProxyDHCP server.
// Nothing is read from disk at request time, so there is no directory to
// walk, no symlink to follow and no file that can change mid-transfer. One
// leading '/' is tolerated ("/undionly.kpxe"): routers and pxelinux-era
// setups often put it in the DHCP file name, and tftpd-hpa --secure serves
// it too. Anything with a directory part after that, a leading dot, a
// backslash (WDS-style "boot\x64\..."), control characters or more than
// 255 bytes is refused.
//
// Errors on the wire, as RFC 1350 clients and operators expect them: a write
// request gets 2 "access violation" (the server is read-only), a path that
// tries to leave the namespace gets 2 as well, an unknown plain name gets 1
// "file not found", and garbage, over-long or truncated requests, and
// DATA/ACK packets sent to port 69 get 4 "illegal TFTP operation". An ERROR
// packet sent to port 69 is never answered: answering errors with errors
// lets two servers ping-pong forever.
//
// Two sockets, one port. github.com/pin/tftp/v3 does the transfers: option
// negotiation (blksize up to the interface MTU, tsize from the in-memory
// size), retransmission, one ephemeral port per transfer as RFC 1350 wants.
// But it answers every refusal with code 1, ignores garbage silently and
// reads requests into a 516-byte buffer. So port 69 is bound twice in one
// SO_REUSEPORT group, and a classic BPF program attached to the group
// (SO_ATTACH_REUSEPORT_CBPF) sorts each datagram in the kernel: an RRQ of
// at most 516 bytes, ending in a NUL, whose name is exactly a served name
// followed by the mode "octet" or "netascii" (any case), goes to pin/tftp;
// everything else goes to the "door" socket, which parses it in Go
// (ParseRequest, CleanName) and answers with the right ERROR from port 69.
// So a known name with a bad mode or without its final NUL gets the same
// strict answer as an unknown one. One gap is left: an option without a
// value (the filter cannot count NULs); pin/tftp ignores such an option.
// FuzzParseRequest runs that same program in x/net/bpf's VM to check that
// the kernel's sorting and the Go parser agree. This is Linux-only, like
// the appliance. SO_REUSEPORT lets another process of the same user join
// the group on the same port; PXE Pilot is meant to be the only TFTP
// server on its address, as it would be with any other server.
//
// Transfer tuning: a DATA block unacknowledged for 1 s is resent, at most 5
// times, with no random back-off. Firmware TFTP clients are simple; a lost
// block on a LAN is lost, not late, and a quick resend is what keeps a
// PXE ROM from giving up. A client that vanishes costs about 6 s of one
// goroutine and one socket.
//
// Router-only mode and the loop breaker. Without ProxyDHCP, the router
// tells the PXE ROM "next-server = appliance, file = undionly.kpxe". iPXE
// starts, DHCPs again, hears the same file name and loads itself again,
// forever: stock Debian iPXE has no embedded script, and BIOS iPXE never
// fetches autoexec.ipxe. iPXE, though, runs any file that starts with
// "#!ipxe" as a script, whatever its name. So when a client IP that has
// just completed a download of an iPXE binary asks for that same binary
// again within LoopWindow, it gets boot.ipxe's bytes under that name, and
// boot.ipxe chains to PXE_BASE_URL/chain over HTTP. Another binary from the
// same IP (a BIOS and a UEFI machine sharing an address) is a first load
// and gets the binary. TFTP carries no MAC address, so "client" means IP;
// see LoopBreaker for the state machine and the top-level README
// ("Routers that only support TFTP") for the limits (clients behind NAT,
// the window).
//
// Metrics: pxe_pilot_tftp_transfers_total{file,result} (file is a served
// name; a loop break counts as boot.ipxe), _sent_bytes_total,
// _transfer_duration_seconds (completed transfers), _rejected_total{reason}
// with reason write|bad_path|not_found|too_long|malformed|busy|
// client_limit|deadline, and _loop_breaks_total. One log line per transfer
// (client, file, served, bytes, duration, result) and per refusal (garbage
// at debug level, and at most 20 refusals a second one by one, so a scan
// cannot flood the log).
//
// Floods: the door answers inline (one parse, one send, no goroutine per
// packet). Transfers are limited three ways (limits.go): 512 under way in
// all, DefaultPerClientLimit (4) under way per client IP, and a deadline
// for a whole transfer sized from its file at 16 KiB/s plus 30 s (82 s for
// Debian's ipxe.efi; a client ACKing a block every 0.8 s would otherwise
// hold a slot for 22 minutes). When the total or a client's
// limit is reached, the server swaps the socket filter for one that sends
// all requests, or that client's (the IPv4 source address is read from
// the IP header, SKF_NET_OFF), to the door, which drops them unanswered
// and counts them as busy or client_limit: no socket, no goroutine, no
// reply. Requests already queued on pin/tftp's socket when the filter
// closes are refused by the transfer handler with pin/tftp's code 1 (it
// has no silent way out once it has opened the transfer's socket): at
// most one burst's worth (TestFloodFromOneHostDoesNotStarveAnother, 600
// RRQs in bursts of 50: 4 admitted, 46 refused so, 550 dropped unanswered).
// A transfer past its deadline ends with an ERROR naming the deadline.
//
// Why silence means "busy". Every TFTP ERROR ends a firmware's boot; only
// silence makes it ask again. From the sources (iPXE src/net/udp/tftp.c at
// 0ab2277, EDK2 NetworkPkg Mtftp4Dxe and UefiPxeBcDxe at c5aa7e7):
//
//	code                       iPXE (tftp_rx_error → tftp_done)          EDK2/OVMF PXE (Mtftp4RrqInput → PxeBcLoadBootFile)
//	0 not defined              ends the transfer: ENOTSUP                ends: EFI_TFTP_ERROR, "PXE-E23: Client received TFTP error"
//	1 file not found           ends: ENOENT "Not found"                  ends: PXE-E23 (only a debug line tells code 1 apart)
//	2 access violation         ends: EACCES                              ends: PXE-E23
//	3 disk full                ends: ENOTSUP                             ends: PXE-E23
//	4 illegal operation        ends: ENOTTY                              ends: PXE-E23
//	5..8 (TID, exists, user,   ends: ENOTSUP                             ends: PXE-E23
//	      option negotiation)
//	no answer (RRQ dropped)    resends the RRQ 0.25, 0.75, 1.75, 3.75,   resends the RRQ every 4 s (PXEBC_MTFTP_TIMEOUT),
//	                           7.75 s after the first (timeout doubling  6 sends (PXEBC_MTFTP_RETRIES): ~24 s, then
//	                           from 1/4 s), ETIMEDOUT at ~15.75 s        "PXE-E18: Server response timeout"
//
// Neither retries a transfer after any ERROR, nor tells a "busy" code
// apart (RFC 1350 has none). A firmware's boot menu may try the PXE entry
// again later, but that is the whole boot failing, not a retry. SeaBIOS
// has no TFTP of its own: on BIOS machines the NIC's PXE ROM (iPXE in
// QEMU) does it.
//
// Confirmed in QEMU 7.2 (TCG) with bench/tftp/firmware/run.sh (an RRQ
// logger on a tap in a network namespace, dnsmasq handing out next-server
// + file), 2026-11-30:
//   - SeaBIOS + the e1000 iPXE ROM (ipxe-qemu 1.0.0+git-20190125), no
//     answer: RRQs at 0, 0.27, 0.81, 1.87, 3.90, 8.02 s from one source
//     port, then "Connection timed out". ERROR 1: one RRQ, "No such file
//     or directory"; ERROR 2: one RRQ, "Permission denied"; ERROR 0: one
//     RRQ, "Operation not supported".
//   - OVMF 2022.11, virtio-net without ROM (EDK2's PXE), no answer: RRQs
//     at 0, 4.6, 9.6, 14.8, 20.9, 27.3 s from one source port, then
//     "PXE-E18: Server response timeout". ERROR 1 or 4: one RRQ,
//     "PXE-E23: Client received TFTP error from server", next boot option.
//
// Both retransmit from the same source port, so a request the filter held
// back is served as soon as a slot frees, on the client's next resend.
package tftpsrv
