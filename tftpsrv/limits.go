package tftpsrv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"
)

// DefaultPerClientLimit caps the transfers under way for one client IP. A
// PXE ROM or iPXE loads one file at a time: EDK2 asks for the size (an RRQ
// with "tsize" that it ends with an ERROR) and only then for the file, and
// iPXE resends its RRQ 0.25 s, 0.75 s, 1.75 s... after the first while no
// answer has come, which pin/tftp takes for new transfers (the client keeps
// the first to answer; the others time out within ~6 s). So one machine
// holds one transfer, briefly two or three; 4 leaves room for that, and for
// two machines behind one address (a BIOS and a UEFI VM on a NAT'd host),
// while a single LAN host can no longer take more than 4 of the
// maxActiveTransfers slots. Config.PerClientLimit overrides it.
const DefaultPerClientLimit = 4

// Transfer deadline. A whole transfer must end within
//
//	deadlineSlack + size of its file / slowRate
//
// slowRate is 16 KiB/s: 32 blocks of 512 bytes (the smallest block size)
// a second, a block every 31 ms. A PXE ROM on a LAN ACKs within a
// millisecond, so 31 ms a block is a link far worse than any we boot over.
// deadlineSlack (30 s) pays on top for 30 lost blocks at the 1 s resend
// timeout. For Debian's ipxe.efi (850 KB) that is 30 s + 52 s = 82 s, where
// a client ACKing a block every 0.8 s would otherwise hold its slot for 22
// minutes (1,662 blocks of 512 bytes).
const (
	slowRate      = 16 << 10 // bytes per second
	deadlineSlack = 30 * time.Second
)

// transferDeadline returns the deadline for the transfer of a file of size
// bytes.
func transferDeadline(size int) time.Duration {
	return deadlineSlack + time.Duration(size)*time.Second/slowRate
}

// errDeadline ends a transfer that ran past its deadline. pin/tftp sends
// the client an ERROR with this message and closes the transfer's socket.
var errDeadline = errors.New("transfer deadline passed")

// deadlineReader is the file's bytes for one transfer; once the deadline
// has passed, the next block read fails with errDeadline.
type deadlineReader struct {
	r        io.Reader
	deadline time.Time
	limit    time.Duration
	cut      <-chan struct{} // closed: the server is stopping
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	select {
	case <-d.cut:
		return 0, errStopping
	default:
	}
	if time.Now().After(d.deadline) {
		return 0, fmt.Errorf("%w: a whole transfer may take at most %v; ask again", errDeadline, d.limit)
	}
	return d.r.Read(p)
}

// errStopping ends the transfers still under way when the server stops.
var errStopping = errors.New("the TFTP server is shutting down; ask again")

// admit reserves a transfer slot for client. It returns "" when admitted
// (the caller must call release), or the refusal reason: "busy" when
// maxActive transfers are under way, "client_limit" when client holds
// perLimit. When a limit is reached it updates the socket filter
// (updateGate) so the next requests fall to the door, which drops them
// without an answer.
func (s *Server) admit(client netip.Addr) string {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	switch {
	case s.total >= s.maxActive:
		return "busy"
	case s.perClient[client] >= s.perLimit:
		return "client_limit"
	}
	s.total++
	s.perClient[client]++
	s.updateGate()
	return ""
}

// release gives back client's slot, and reopens the filter if a limit is
// no longer reached.
func (s *Server) release(client netip.Addr) {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	s.total--
	if s.perClient[client]--; s.perClient[client] <= 0 {
		delete(s.perClient, client)
	}
	s.updateGate()
}

// heldReason says why the socket filter is holding back requests from
// client: the door counts a held request under this reason.
func (s *Server) heldReason(client netip.Addr) string {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	if s.perClient[client.Unmap()] >= s.perLimit {
		return "client_limit"
	}
	return "busy"
}

// updateGate installs a new socket filter when the set of held-back
// clients changed. Called with gateMu held. The kernel swaps the program
// atomically; requests queued on the pin/tftp socket before the swap still
// reach handleRead, which refuses them (with code 1: pin/tftp has no other
// way to end a transfer it opened). A failed swap is logged and changes
// nothing else: handleRead enforces the same limits.
func (s *Server) updateGate() {
	g := gate{closed: s.total >= s.maxActive}
	if !g.closed && s.ipv4 {
		for ip, n := range s.perClient {
			if n >= s.perLimit && ip.Is4() {
				g.blocked = append(g.blocked, ip)
			}
		}
		slices.SortFunc(g.blocked, netip.Addr.Compare)
	}
	if g.closed == s.gate.closed && slices.Equal(g.blocked, s.gate.blocked) {
		return
	}
	if s.door == nil { // a Server built by hand in a test
		s.gate = g
		return
	}
	raw, err := splitProgram(s.filterNames, g)
	if err == nil {
		err = attachFilter(s.door, raw)
	}
	if errors.Is(err, net.ErrClosed) {
		return // shutting down: transfers ending after the door closed
	}
	if err != nil {
		s.log.Warn("TFTP socket filter not updated; the limits are still enforced per transfer", "err", err)
		return
	}
	s.gate = g
}
