// Command rrqlog is the TFTP end of run.sh's firmware experiment: it logs
// every request that reaches port 69 with its time since the first, and
// answers nothing (-mode silent) or the first RRQ with one ERROR of a given
// code (-mode error:N). It stops after -for.
//
//	rrqlog -addr 198.51.100.1:69 -mode silent -for 60s
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "198.51.100.1:69", "UDP address to listen on")
	mode := flag.String("mode", "silent", "silent, or error:N to answer the first RRQ with ERROR code N")
	dur := flag.Duration("for", time.Minute, "how long to listen")
	flag.Parse()
	if err := run(*addr, *mode, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "rrqlog:", err)
		os.Exit(1)
	}
}

func run(addr, mode string, dur time.Duration) error {
	code := -1
	if rest, ok := strings.CutPrefix(mode, "error:"); ok {
		n, err := strconv.ParseUint(rest, 10, 16)
		if err != nil {
			return fmt.Errorf("-mode %q: want silent or error:N with N a TFTP error code", mode)
		}
		code = int(n)
	} else if mode != "silent" {
		return fmt.Errorf("-mode %q: want silent or error:N", mode)
	}
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	end := time.Now().Add(dur)
	var first time.Time
	answered := false
	buf := make([]byte, 2048)
	for time.Now().Before(end) {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, src, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if n < 2 {
			continue
		}
		op := binary.BigEndian.Uint16(buf)
		fields := bytes.Split(bytes.TrimRight(buf[2:n], "\x00"), []byte{0})
		fmt.Printf("%7.2fs op=%d from=%s %q\n", now.Sub(first).Seconds(), op, src, fields)
		if op != 1 || code < 0 || answered {
			continue
		}
		// The answer comes from a fresh port, as from a real server.
		r, err := net.ListenPacket("udp4", strings.Split(addr, ":")[0]+":0")
		if err != nil {
			return err
		}
		pkt := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 5), uint16(code))
		r.WriteTo(append(pkt, "rrqlog experiment\x00"...), src)
		r.Close()
		answered = true
		fmt.Printf("%7.2fs sent ERROR code %d\n", now.Sub(first).Seconds(), code)
	}
	return nil
}
