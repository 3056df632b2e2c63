package tftpsrv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/ipv4"
)

// verdict is the door's answer to a packet from src: the error to send
// (nil, or Silent: send nothing).
func (s *Server) verdict(p []byte, src netip.Addr) *RequestError {
	req, err := ParseRequest(p)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			return re
		}
		return nil // errIgnore
	}
	if req.Op == opWRQ {
		return reject(ErrAccessViolation, "write", "access violation: PXE Pilot's TFTP server is read-only")
	}
	name, rerr := s.clean(req.Filename)
	if rerr != nil {
		return rerr
	}
	_, known := s.files[name]
	if _, gen := s.generated(name); known || gen {
		// A well-formed RRQ for a known or generated name: the socket
		// filter held it back because a limit is reached. No answer: the client
		// retransmits its RRQ and is served once a slot frees, where any
		// ERROR would end its boot (doc.go has the table).
		re := reject(ErrNotDefined, s.heldReason(src), "request for %q held back: too many transfers under way", name)
		re.Silent = true
		return re
	}
	return reject(ErrFileNotFound, "not_found", "file not found: %q (served: %s)", req.Filename, strings.Join(s.names(), ", "))
}

// serveDoor answers, from port 69 itself, every packet the socket filter
// did not pass to pin/tftp. Each answer is one parse and one send, done
// inline: a flood of garbage costs a loop iteration per packet and never
// a goroutine.
func (s *Server) serveDoor() {
	buf := make([]byte, 65536)
	var p4 *ipv4.PacketConn
	if la, ok := s.door.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		p4 = ipv4.NewPacketConn(s.door)
		if err := p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
			p4 = nil
		}
	}
	for {
		var (
			n   int
			src net.Addr
			err error
			dst net.IP
		)
		if p4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = p4.ReadFrom(buf)
			if cm != nil && !cm.Dst.IsMulticast() && !cm.Dst.Equal(net.IPv4bcast) {
				dst = cm.Dst
			}
		} else {
			n, src, err = s.door.ReadFrom(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("TFTP read failed", "err", err)
			continue
		}
		var from netip.Addr
		if ua, ok := src.(*net.UDPAddr); ok {
			from, _ = netip.AddrFromSlice(ua.IP)
			from = from.Unmap()
		}
		re := s.verdict(buf[:n], from)
		if re == nil {
			continue
		}
		s.m.TFTPRejected.WithLabelValues(re.Reason).Inc()
		s.logRefusal(time.Now(), src, re)
		if re.Silent {
			continue
		}
		pkt := errorPacket(re.Code, re.Message)
		// Answer from the address the client wrote to: on a host with
		// several addresses, a reply from another one is dropped by
		// clients that check the server's address.
		if p4 != nil && dst != nil {
			_, err = p4.WriteTo(pkt, &ipv4.ControlMessage{Src: dst}, src)
		} else {
			_, err = s.door.WriteTo(pkt, src)
		}
		if err != nil {
			s.log.Debug("TFTP error reply not sent", "client", src.String(), "err", err)
		}
	}
}

// logRefusal logs a refusal, at most refusalLogBurst a second. Garbage is
// logged at debug level only.
func (s *Server) logRefusal(now time.Time, src net.Addr, re *RequestError) {
	if now.Sub(s.logSecond) >= time.Second {
		if s.suppressed > 0 {
			s.log.Warn("TFTP refusals not logged one by one (too many); see pxe_pilot_tftp_rejected_total", "count", s.suppressed)
		}
		s.logSecond, s.logged, s.suppressed = now, 0, 0
	}
	if s.logged >= refusalLogBurst {
		s.suppressed++
		return
	}
	s.logged++
	level := slog.LevelInfo
	if re.Reason == "malformed" {
		level = slog.LevelDebug
	}
	if re.Silent {
		s.log.Log(context.Background(), level, "TFTP request held back, not answered (the client will ask again)", "client", src.String(), "reason", re.Reason, "err", re.Message)
		return
	}
	s.log.Log(context.Background(), level, "TFTP request refused", "client", src.String(), "reason", re.Reason, "code", int(re.Code), "err", re.Message)
}
