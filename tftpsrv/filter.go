package tftpsrv

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Socket indexes in the SO_REUSEPORT group of port 69. The door must be
// index 0: a classic BPF program that loads past the end of a packet stops
// and returns 0, so every short or odd packet falls to the door by
// construction.
const (
	sockDoor = 0
	sockPin  = 1
)

// skfNetOff is SKF_NET_OFF: classic BPF loads at this offset plus k read
// byte k of the IP header rather than of the UDP payload.
const skfNetOff = 0xfff00000

// gate is what the socket filter holds back from pin/tftp for a while:
// every request (closed: the transfer cap is reached) or the requests of
// some IPv4 clients (each at its per-client limit). Those requests fall to
// the door, which drops them without an answer, so the client retransmits
// its RRQ later; see handleRead and doc.go for why silence is the only
// "busy" that firmware retries.
type gate struct {
	closed  bool
	blocked []netip.Addr // IPv4 only; at most maxActive/perLimit
}

// splitProgram builds the classic BPF program that sorts packets arriving
// at port 69 between the two sockets of the group. A packet goes to the
// pin/tftp socket only if it is an RRQ of at most MaxRequestLen bytes that
// ends in a NUL, whose file name is exactly one of names (or, for a name
// ending in '/', any name in that folder), optionally after one leading
// '/', followed by the mode "octet" or "netascii" (in any case)
// and its NUL, and if g does not hold it back. Everything else goes to the
// door, which parses it in Go and answers it (ParseRequest, CleanName): a
// request for a known name with a bad mode or without its final NUL gets
// the same strict answer as one for an unknown name.
//
// The kernel runs the program with the packet's data starting at the UDP
// payload, so offset 0 is the TFTP opcode.
func splitProgram(names []string, g gate) ([]bpf.RawInstruction, error) {
	// Assembled with symbolic targets: each instruction may name the label
	// it jumps to on true/false; the resolver turns them into skips.
	type ins struct {
		i           bpf.Instruction
		jt, jf      string // labels for JumpIf
		jump        string // label for an unconditional Jump
		label       string
		isCondition bool
	}
	var prog []ins
	// scan is the search for the end of a name in a folder: the rest of
	// the name starts at off and has at most max bytes, so that the whole
	// name, its slash included, has at most MaxNameLen.
	type scan struct {
		label string
		off   uint32
		max   int
	}
	var scans []scan
	emit := func(i bpf.Instruction) { prog = append(prog, ins{i: i}) }
	cond := func(c bpf.JumpTest, v uint32, jt, jf string) {
		prog = append(prog, ins{i: bpf.JumpIf{Cond: c, Val: v}, jt: jt, jf: jf, isCondition: true})
	}
	jump := func(l string) { prog = append(prog, ins{i: bpf.Jump{}, jump: l}) }
	label := func(l string) { prog = append(prog, ins{label: l}) }

	if g.closed {
		return bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: sockDoor}})
	}
	if len(g.blocked) > 0 {
		// The source address, from the IP header. The door's own
		// sorting of IPv6 requests never gets here (blocked is IPv4).
		emit(bpf.LoadAbsolute{Off: skfNetOff + 12, Size: 4})
		for _, ip := range g.blocked {
			b := ip.As4()
			cond(bpf.JumpEqual, binary.BigEndian.Uint32(b[:]), "early_door", "")
		}
	}
	emit(bpf.LoadExtension{Num: bpf.ExtLen})
	cond(bpf.JumpGreaterThan, MaxRequestLen, "early_door", "")
	emit(bpf.LoadAbsolute{Off: 0, Size: 2})
	cond(bpf.JumpNotEqual, opRRQ, "early_door", "")
	// The last byte must be a NUL: X = len-1, A = packet[X].
	emit(bpf.LoadExtension{Num: bpf.ExtLen})
	emit(bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: 1})
	emit(bpf.TAX{})
	emit(bpf.LoadIndirect{Off: 0, Size: 1})
	cond(bpf.JumpNotEqual, 0, "early_door", "")
	jump("names")
	// Jumps reach at most 255 instructions: a door near the checks above.
	label("early_door")
	emit(bpf.RetConstant{Val: sockDoor})
	label("names")
	for ni, name := range names {
		// A name ending in '/' is a folder whose every name goes to
		// pin/tftp with a good mode (generated files, files.go); Go
		// checks the rest of the name.
		folder := strings.HasSuffix(name, "/")
		for _, slash := range []bool{false, true} {
			want := []byte(name)
			if slash {
				want = append([]byte{'/'}, want...)
			}
			if !folder {
				want = append(want, 0)
			}
			next := fmt.Sprintf("next%d%v", ni, slash)
			off := uint32(2)
			for len(want) > 0 {
				size := 4
				if len(want) < 4 {
					size = len(want)
					if size == 3 {
						size = 2
					}
				}
				var v uint32
				for _, b := range want[:size] {
					v = v<<8 | uint32(b)
				}
				emit(bpf.LoadAbsolute{Off: off, Size: size})
				cond(bpf.JumpNotEqual, v, next, "")
				off += uint32(size)
				want = want[size:]
			}
			if folder {
				// The rest of the name is found by a scan placed after
				// the names (below), out of the way of these short jumps.
				sc := scan{label: fmt.Sprintf("scan%d%v", ni, slash), off: off, max: MaxNameLen - int(off-2)}
				scans = append(scans, sc)
				jump(sc.label)
				label(next)
				continue
			}
			// The name matched; the mode starts at off.
			emit(bpf.LoadConstant{Dst: bpf.RegX, Val: off})
			jump("mode")
			label(next)
		}
	}
	jump("door")

	// A folder's name has no fixed length and classic BPF has no loops:
	// look for the name's NUL at each offset a name of at most MaxNameLen
	// allows, then check the mode after it like any other name's. A load
	// past the end stops the program: the door. (Classic BPF jumps only
	// forward: this sits between the names and the mode.)
	for _, sc := range scans {
		label(sc.label)
		for i := 0; i <= sc.max; i++ {
			more := fmt.Sprintf("%s.%d", sc.label, i)
			emit(bpf.LoadAbsolute{Off: sc.off + uint32(i), Size: 1})
			cond(bpf.JumpNotEqual, 0, more, "")
			emit(bpf.LoadConstant{Dst: bpf.RegX, Val: sc.off + uint32(i) + 1})
			jump("mode")
			label(more)
		}
		jump("door")
	}

	// The mode, at X: "octet" or "netascii" in any case, then a NUL. OR
	// 0x20 folds ASCII letters to lower case, and only the two cases of
	// a letter fold to it. A load past the end returns 0, the door.
	label("mode")
	emit(bpf.LoadIndirect{Off: 0, Size: 4})
	emit(bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: 0x20202020})
	cond(bpf.JumpEqual, 0x6f637465, "octet", "")        // "octe"
	cond(bpf.JumpEqual, 0x6e657461, "netascii", "door") // "neta"
	label("octet")
	emit(bpf.LoadIndirect{Off: 4, Size: 1})
	emit(bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: 0x20})
	cond(bpf.JumpNotEqual, 't', "door", "")
	emit(bpf.LoadIndirect{Off: 5, Size: 1})
	cond(bpf.JumpNotEqual, 0, "door", "")
	emit(bpf.RetConstant{Val: sockPin})
	label("netascii")
	emit(bpf.LoadIndirect{Off: 4, Size: 4})
	emit(bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: 0x20202020})
	cond(bpf.JumpNotEqual, 0x73636969, "door", "") // "scii"
	emit(bpf.LoadIndirect{Off: 8, Size: 1})
	cond(bpf.JumpNotEqual, 0, "door", "")
	emit(bpf.RetConstant{Val: sockPin})

	label("door")
	emit(bpf.RetConstant{Val: sockDoor})

	// Resolve labels: labels occupy no slot.
	pos := map[string]int{}
	var out []bpf.Instruction
	for _, in := range prog {
		if in.label != "" {
			pos[in.label] = len(out)
			continue
		}
		out = append(out, in.i)
	}
	pc := 0
	for _, in := range prog {
		if in.label != "" {
			continue
		}
		if in.jump != "" {
			skip := pos[in.jump] - pc - 1
			if skip < 0 {
				return nil, fmt.Errorf("tftp socket filter: a jump back to %s; classic BPF jumps only forward", in.jump)
			}
			out[pc] = bpf.Jump{Skip: uint32(skip)}
		}
		if in.isCondition {
			j := in.i.(bpf.JumpIf)
			for _, t := range []struct {
				l   string
				dst *uint8
			}{{in.jt, &j.SkipTrue}, {in.jf, &j.SkipFalse}} {
				if t.l == "" {
					continue
				}
				skip := pos[t.l] - pc - 1
				if skip < 0 || skip > 255 {
					return nil, fmt.Errorf("tftp socket filter: jump of %d instructions does not fit classic BPF", skip)
				}
				*t.dst = uint8(skip)
			}
			out[pc] = j
		}
		pc++
	}
	if len(out) > bpfMaxInsns {
		return nil, fmt.Errorf("tftp socket filter: %d instructions, over classic BPF's %d", len(out), bpfMaxInsns)
	}
	return bpf.Assemble(out)
}

// bpfMaxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
// The appliance's names, a generated folder's scans and a full gate take
// about 2,400.
const bpfMaxInsns = 4096

// listenSplit binds the two sockets of port 69 in one SO_REUSEPORT group and
// attaches the program that sorts requests between them.
//
// Why two sockets: pin/tftp does the transfer work well (option
// negotiation, blksize up to the interface MTU, retransmission), but it
// owns its socket and answers every refusal with code 1 "file not found",
// and garbage with silence. The door socket gives write requests "access
// violation", "../etc/passwd" "access violation" and garbage "illegal TFTP
// operation", as RFC 1350 clients and operators expect, before pin/tftp
// ever sees them.
func listenSplit(network, addr string, names []string) (door, pin *net.UDPConn, err error) {
	raw, err := splitProgram(names, gate{})
	if err != nil {
		return nil, nil, err
	}
	reuse := func(attach bool) func(network, address string, c syscall.RawConn) error {
		return func(network, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
				if serr != nil {
					return
				}
				// Ask for the destination address and interface of every
				// datagram from the first one on. pin/tftp turns them on
				// only when Serve starts, and a request that was queued
				// before then carries no interface index: pin/tftp then
				// cannot learn the MTU and caps blksize at 512 for it.
				if network == "udp6" {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
				}
				if serr != nil || !attach {
					return
				}
				serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, sockFprog(raw))
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	lc := net.ListenConfig{Control: reuse(true)}
	dc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, nil, err
	}
	door = dc.(*net.UDPConn)
	// The second socket binds the very address the first one got (this
	// matters for port 0 in tests).
	lc = net.ListenConfig{Control: reuse(false)}
	pc, err := lc.ListenPacket(context.Background(), network, door.LocalAddr().String())
	if err != nil {
		door.Close()
		return nil, nil, fmt.Errorf("second socket on %s: %w", door.LocalAddr(), err)
	}
	return door, pc.(*net.UDPConn), nil
}

// sockFprog converts an assembled program for setsockopt.
func sockFprog(raw []bpf.RawInstruction) *unix.SockFprog {
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
}

// attachFilter replaces the program of the SO_REUSEPORT group c belongs to.
func attachFilter(c *net.UDPConn, raw []bpf.RawInstruction) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, sockFprog(raw))
	}); err != nil {
		return err
	}
	return serr
}
