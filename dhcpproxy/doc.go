// Package dhcpproxy is PXE Pilot's ProxyDHCP server: it tells network-booting
// machines where to get iPXE (and, once iPXE runs, where to get its script)
// without handing out addresses. The LAN's own DHCP server keeps doing that.
//
// # How ProxyDHCP works
//
// A PXE client broadcasts a DHCPDISCOVER carrying option 60 "PXEClient:…"
// (or "HTTPClient:…" for UEFI HTTP Boot) and option 93, its architecture.
// It then collects offers for a few seconds: the router's offer has an
// address and no boot file, ours has no address (yiaddr 0) and only the boot
// instructions: next-server (siaddr) = us, a file name, option 54 = us and
// option 60 echoing the class. The client merges the two. iPXE waits only
// about two seconds after the router's offer for a ProxyDHCP offer, so we
// answer in the receive path, in microseconds, and never let a slow
// KnownMAC lookup hold up the next client.
//
// We answer on two ports:
//   - 67: DHCPDISCOVER (and DHCPINFORM with a PXE class) from PXE clients,
//     replied to 255.255.255.255:68 because the client has no address yet,
//     to giaddr:67 when a relay forwarded it, or to ciaddr:68 when the client
//     already has one.
//   - 4011: the "boot server discovery" DHCPREQUEST that a client sends after
//     it has its address, to the ProxyDHCP server's unicast address. We reply
//     with a DHCPACK to the request's source address and port.
//
// # Which file
//
//   - User class (option 77) "iPXE": iPXE is already running, give it
//     BaseURL+"/chain" over HTTP whatever the architecture.
//   - Arch 0, BIOS PXE ROM: undionly.kpxe over TFTP.
//   - Arch 7, 9 (UEFI x64, EFI BC): the configured EFI binary (ipxe.efi
//     or snponly.efi) over TFTP.
//   - Arch 6 and 15 (32-bit UEFI): ignored with a reason. Every binary
//     served is x86_64, which such firmware cannot load.
//   - Arch 11 (UEFI arm64): the arm64 binary if one is configured; else the
//     packet is ignored with a reason, so another server may answer.
//   - Arch 16, 19 (UEFI HTTP Boot, x64/arm64): the binary's URL,
//     BaseURL+"/ipxe/"+name, with option 60 "HTTPClient" in the reply
//     (EDK2's HTTP Boot driver drops offers that do not carry it).
//   - Anything else, including non-PXE clients, is ignored and counted by a
//     reason from a small fixed set (see the Reason constants).
//
// # Firmware quirks covered
//
//   - BIOS PXE ROMs: the PXE 2.1 spec makes option 43 part of a ProxyDHCP
//     offer, and ROMs written to it (Intel's boot agent among them) pass
//     over an offer without it; pixiecore and dnsmasq both send it. With
//     PXE_DISCOVERY_CONTROL (sub-option 6) = 8 a ROM takes the file named in
//     the offer instead of first doing boot server discovery. Our BIOS
//     offers carry exactly that option 43 and no boot menu.
//   - UEFI (EDK2, OVMF): EDK2 sorts proxy offers by their option 43; one
//     with PXE vendor options is a "PXE10" offer and goes through the boot
//     server / menu logic, one without is a "BINL" offer, after which the
//     firmware sends a DHCPREQUEST to the proxy's port 4011 and boots the
//     siaddr+file of the ACK. UEFI offers therefore leave option 43 out, and
//     port 4011 answers with siaddr, file, 54, 60 and 97. Measured with
//     OVMF 2022.11 (TestFirmwareQEMU): request from port 4011 to 4011, ACK
//     back to 4011, then a TFTP read of the EFI binary.
//   - QEMU's iPXE ROM, given a PXE boot menu in option 43, does boot server
//     discovery before it takes the filename; iPXE also asks port 4011
//     whenever the proxy offer lacks siaddr+filename. We never send a menu and
//     always send both, so iPXE takes the offer as it is.
//   - Option 97 (client machine GUID) is echoed when the client sent it: the
//     PXE spec requires it and some ROMs match offers by it. Some Intel ROMs
//     do not send 97 at all; then the reply simply has none.
//   - Mellanox FlexBoot (and other vendor iPXE builds) do not send user
//     class "iPXE": they are treated as the firmware they present themselves
//     as, by option 93, and get an iPXE binary.
//   - iPXE's user class is the bare string "iPXE", not RFC 3004's
//     length-prefixed list; both encodings are accepted.
//   - Older ROMs without option 93 still put the architecture in option 60
//     ("PXEClient:Arch:00000:UNDI:002001"); it is read from there.
//   - The file name goes into the BOOTP file field, which every ROM reads;
//     URLs (iPXE, HTTP Boot) also go into option 67, which allows names longer
//     than the field's 127 bytes. Replies are padded to the 300 bytes of a
//     BOOTP message: some relays and ROMs drop shorter ones.
//
// We never answer BOOTREPLY, RELEASE, DECLINE, a DHCPREQUEST on port 67 (that
// one is for the router), a non-PXE INFORM, nor a packet from our own
// address.
//
// # Privileges
//
// New binds UDP 67 and 4011 on 0.0.0.0 (broadcasts only arrive at a socket
// bound to the wildcard address) with SO_REUSEADDR and SO_BROADCAST, and pins
// both sockets to one interface with SO_BINDTODEVICE, so that another DHCP
// server on another interface of the same host keeps working. Binding port
// 67 needs CAP_NET_BIND_SERVICE; SO_BINDTODEVICE needs CAP_NET_RAW on kernels
// before 5.7. Nothing else: no raw sockets, no packet capture. Under Docker
// that means `--net=host` (broadcasts do not cross Docker's NAT) and the
// default capability set, which includes both.
package dhcpproxy
