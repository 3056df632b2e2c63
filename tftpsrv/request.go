package tftpsrv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// ErrorCode is a TFTP error code as carried in an ERROR packet (RFC 1350).
type ErrorCode uint16

// The codes this server sends.
const (
	ErrNotDefined      ErrorCode = 0
	ErrFileNotFound    ErrorCode = 1
	ErrAccessViolation ErrorCode = 2
	ErrIllegalOp       ErrorCode = 4
)

// Limits on requests arriving at port 69.
const (
	// MaxRequestLen is the largest request packet accepted. RFC 2347 caps a
	// request, options included, at 512 octets; the 516 leaves room for
	// clients that count the 4-byte header separately (tftpd-hpa reads 516
	// too). Anything longer is garbage or an attack, never a firmware.
	MaxRequestLen = 516
	// MaxNameLen is the longest file name accepted. Every name this server
	// knows is under 16 bytes; 255 keeps the door open for pxelinux-style
	// paths in a log line while refusing the kilobyte names fuzzers send.
	MaxNameLen = 255
)

// Request is a parsed read or write request.
type Request struct {
	Op       uint16 // opRRQ or opWRQ
	Filename string // as sent, before any cleaning
	Mode     string // lower-cased: "octet" or "netascii" (or "mail" in a WRQ)
	Options  map[string]string
}

// RequestError is why a packet arriving at port 69 is refused: the TFTP
// error code to put on the wire, the reason label for
// pxe_pilot_tftp_rejected_total, and a message for the client and the log.
type RequestError struct {
	Code    ErrorCode
	Reason  string // bounded: malformed, write, bad_path, too_long, not_found, busy, client_limit (deadline: see handleRead)
	Message string
	// Silent: count and log the refusal but send nothing (a request held
	// back by a limit; the client's retransmission is the retry).
	Silent bool
}

func (e *RequestError) Error() string { return e.Message }

func reject(code ErrorCode, reason, format string, a ...any) *RequestError {
	return &RequestError{Code: code, Reason: reason, Message: fmt.Sprintf(format, a...)}
}

// errIgnore marks a packet that must not be answered at all: an ERROR sent
// to port 69. Answering an error with an error can make two TFTP servers
// ping-pong forever.
var errIgnore = errors.New("ERROR packet sent to the request port; not answered")

// ParseRequest parses a packet that arrived at the server's request port.
// It returns a *RequestError for anything that is not a well-formed RRQ or
// WRQ, or errIgnore for a stray ERROR packet. It never panics, whatever the
// bytes (see FuzzParseRequest).
func ParseRequest(p []byte) (Request, error) {
	if len(p) < 2 {
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: packet of %d bytes has no opcode", len(p))
	}
	if len(p) > MaxRequestLen {
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: request of %d bytes is longer than %d", len(p), MaxRequestLen)
	}
	op := binary.BigEndian.Uint16(p)
	switch op {
	case opRRQ, opWRQ:
	case opERROR:
		return Request{}, errIgnore
	case opDATA, opACK, opOACK:
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: opcode %d is only valid inside a transfer", op)
	default:
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: unknown opcode %d", op)
	}
	body := p[2:]
	// A request is a sequence of NUL-terminated strings: name, mode, then
	// option/value pairs. The last byte must be the terminating NUL.
	if len(body) == 0 || body[len(body)-1] != 0 {
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: request is not NUL-terminated")
	}
	fields := bytes.Split(body[:len(body)-1], []byte{0})
	if len(fields) < 2 {
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: request has a file name but no transfer mode")
	}
	if len(fields)%2 != 0 {
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: option %q has no value", fields[len(fields)-1])
	}
	r := Request{Op: op, Filename: string(fields[0]), Mode: strings.ToLower(string(fields[1]))}
	switch r.Mode {
	case "octet", "netascii":
	case "mail":
		if op == opRRQ {
			return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: transfer mode \"mail\" is for write requests only; read with \"octet\"")
		}
	default:
		return Request{}, reject(ErrIllegalOp, "malformed", "illegal TFTP operation: unknown transfer mode %q", fields[1])
	}
	if len(fields) > 2 {
		r.Options = make(map[string]string, (len(fields)-2)/2)
		for i := 2; i+1 < len(fields); i += 2 {
			r.Options[strings.ToLower(string(fields[i]))] = string(fields[i+1])
		}
	}
	return r, nil
}

// CleanName checks a requested file name and returns the name to look up.
//
// Policy, in the order applied:
//   - longer than MaxNameLen bytes: refused (too_long);
//   - one leading '/' is tolerated and dropped: routers and pxelinux-era
//     configurations often say "/undionly.kpxe" (and tftpd-hpa --secure
//     serves that from its root), so refusing it would break real setups.
//     Only one: "//x" is not a name any firmware invents;
//   - what remains must be a plain name: no '/', no '\' (Windows-minded
//     firmware and WDS configurations send "boot\x64\..."), no NUL or control
//     characters, not "." or "..", not starting with '.'. So "../etc/passwd",
//     "/etc/passwd" (which becomes "etc/passwd") and "C:\x" are access
//     violations, told apart from a plain unknown name which is "file not
//     found".
//
// Nothing is ever opened on disk with the result: it is only a key into the
// in-memory table built at New, so this is belt and braces, and it makes the
// error the client sees say what was wrong.
func CleanName(name string) (string, *RequestError) {
	if len(name) > MaxNameLen {
		return "", reject(ErrIllegalOp, "too_long", "illegal TFTP operation: file name of %d bytes is longer than %d", len(name), MaxNameLen)
	}
	n := strings.TrimPrefix(name, "/")
	switch {
	case n == "":
		return "", reject(ErrFileNotFound, "not_found", "file not found: empty file name")
	case strings.HasPrefix(n, "/"):
		return "", reject(ErrAccessViolation, "bad_path", "access violation: absolute path %q; only names of files this server knows are served", name)
	case strings.HasPrefix(n, "."):
		return "", reject(ErrAccessViolation, "bad_path", "access violation: %q starts with a dot; parent directories and hidden files are never served", name)
	case strings.ContainsAny(n, "/\\"):
		return "", reject(ErrAccessViolation, "bad_path", "access violation: %q has a directory part; this server has no directories", name)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x20 || c == 0x7f {
			return "", reject(ErrAccessViolation, "bad_path", "access violation: file name %q contains control characters", name)
		}
	}
	return n, nil
}

// errorPacket builds a TFTP ERROR packet.
func errorPacket(code ErrorCode, msg string) []byte {
	if len(msg) > 200 {
		msg = msg[:200]
	}
	p := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(p, opERROR)
	binary.BigEndian.PutUint16(p[2:], uint16(code))
	p = append(p, msg...)
	return append(p, 0)
}
