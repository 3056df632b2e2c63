package tftpsrv

import (
	"context"
	"fmt"
	"net"
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

// splitProgram builds the classic BPF program that sorts packets arriving
// at port 69 between the two sockets of the group. A packet goes to the
// pin/tftp socket only if it is an RRQ of at most MaxRequestLen bytes whose
// file name is exactly one of names, optionally after one leading '/', and
// is followed by a non-empty mode string. Everything else goes to the door.
//
// The kernel runs the program with the packet's data starting at the UDP
// payload, so offset 0 is the TFTP opcode.
func splitProgram(names []string) ([]bpf.RawInstruction, error) {
	// Assembled with symbolic targets: each instruction may name the label
	// it jumps to on true/false; the resolver turns them into skips.
	type ins struct {
		i           bpf.Instruction
		jt, jf      string // labels for JumpIf
		label       string
		isCondition bool
	}
	var prog []ins
	emit := func(i bpf.Instruction) { prog = append(prog, ins{i: i}) }
	cond := func(c bpf.JumpTest, v uint32, jt, jf string) {
		prog = append(prog, ins{i: bpf.JumpIf{Cond: c, Val: v}, jt: jt, jf: jf, isCondition: true})
	}
	label := func(l string) { prog = append(prog, ins{label: l}) }

	// toDoor returns to the door when the test holds. It returns on the
	// spot instead of jumping to one shared return at the end: with long
	// names (GRUB's "/grub/grub.cfg" paths) that end lies further than
	// the 255 instructions a classic BPF jump can skip.
	doors := 0
	toDoor := func(c bpf.JumpTest, v uint32) {
		doors++
		past := fmt.Sprintf("door%d", doors)
		cond(c, v, "", past)
		emit(bpf.RetConstant{Val: sockDoor})
		label(past)
	}

	emit(bpf.LoadExtension{Num: bpf.ExtLen})
	toDoor(bpf.JumpGreaterThan, MaxRequestLen)
	emit(bpf.LoadAbsolute{Off: 0, Size: 2})
	toDoor(bpf.JumpNotEqual, opRRQ)
	for ni, name := range names {
		// A name ending in '/' is a folder whose every name goes to
		// pin/tftp (generated files); the Go side checks the rest.
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
				emit(bpf.RetConstant{Val: sockPin})
				label(next)
				continue
			}
			// The name matched; a mode must follow (an RRQ cut short
			// after the name is the door's to refuse). A load past the
			// end returns 0, the door.
			emit(bpf.LoadAbsolute{Off: off, Size: 1})
			toDoor(bpf.JumpEqual, 0)
			emit(bpf.RetConstant{Val: sockPin})
			label(next)
		}
	}
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
	return bpf.Assemble(out)
}

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
	raw, err := splitProgram(names)
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
				filter := make([]unix.SockFilter, len(raw))
				for i, r := range raw {
					filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
				}
				serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
					&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
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
