// Command tftpload measures TFTP download throughput against any TFTP
// server, and can run PXE Pilot's own TFTP server for it to measure.
//
//	tftpload serve -addr 127.0.0.1:6969
//	tftpload load -addr 127.0.0.1:6969 -file ipxe.efi -clients 10 -transfers 100
//
// load starts -clients workers that download -file over and over until
// -transfers downloads have been started or -max-time has passed, checks
// every download against -expect (a local copy of the file), and prints
// one line: server label, file, clients, transfers, failures, seconds,
// transfers/s, MB/s. run.sh drives it against pxe-pilot and tftpd-hpa in
// the same run.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/tftpsrv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tftpload serve|load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; want serve or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tftpload:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:6969", "UDP address to serve on")
	dir := fs.String("ipxe-dir", "", "folder of iPXE builds (default: Debian's /usr/lib/ipxe)")
	base := fs.String("base-url", "http://127.0.0.1:8000", "PXE_BASE_URL written into boot.ipxe")
	window := fs.Duration("loop-window", time.Nanosecond, "loop breaker window; the 1 ns default turns it off for load tests, where every client is 127.0.0.1")
	perClient := fs.Int("per-client", 1024, "transfers under way per client IP; the high default lifts the appliance's limit (4) for load tests, where every client is 127.0.0.1")
	verbose := fs.Bool("v", false, "log every transfer")
	fs.Parse(args)
	bins, err := assets.LoadBinaries(assets.Options{Dir: *dir, NoEmbedded: true})
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Every load client is 127.0.0.1, so they all look like one machine:
	// the 1 ns default window keeps the loop breaker from answering repeat
	// downloads with the boot script, and -per-client lifts the per-client
	// transfer limit.
	srv, err := tftpsrv.New(tftpsrv.Config{Addr: *addr, Binaries: bins, BaseURL: *base, LoopWindow: *window, PerClientLimit: *perClient, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "tftpload: serving on", srv.Addr())
	return srv.Serve(ctx)
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:6969", "TFTP server")
	label := fs.String("label", "server", "label for the output line")
	file := fs.String("file", "undionly.kpxe", "file to download")
	expect := fs.String("expect", "", "local copy of the file to check every download against (required)")
	clients := fs.Int("clients", 1, "concurrent clients")
	transfers := fs.Int("transfers", 100, "downloads to run in all")
	maxTime := fs.Duration("max-time", 60*time.Second, "stop starting downloads after this long")
	blksize := fs.Int("blksize", 1468, "blksize option (0: none, plain RFC 1350)")
	fs.Parse(args)
	if *expect == "" || *clients < 1 || *transfers < 1 {
		return fmt.Errorf("load needs -expect FILE, -clients >= 1 and -transfers >= 1")
	}
	want, err := os.ReadFile(*expect)
	if err != nil {
		return err
	}
	wantSum := sha256.Sum256(want)

	var started, failed, bytesOK atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(*maxTime)
	begin := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for started.Add(1) <= int64(*transfers) && time.Now().Before(deadline) {
				got, err := get(*addr, *file, *blksize)
				if err == nil && sha256.Sum256(got) != wantSum {
					err = fmt.Errorf("%s: %d bytes with the wrong sha256", *file, len(got))
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				bytesOK.Add(int64(len(got)))
			}
		}()
	}
	wg.Wait()
	el := time.Since(begin).Seconds()
	done := bytesOK.Load() / int64(len(want))
	fmt.Printf("%-10s %-14s %7d %9d %6d %8.2f %10.1f %8.2f\n", *label, *file, *clients, done, failed.Load(), el,
		float64(done)/el, float64(bytesOK.Load())/el/1e6)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "tftpload: %s: first error: %v\n", *label, e)
	}
	return nil
}

func get(addr, file string, blksize int) ([]byte, error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(5)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(file, "octet")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
