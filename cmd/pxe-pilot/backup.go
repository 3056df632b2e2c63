package main

// Backup, restore and recovery subcommands:
//
//	pxe-pilot backup <file>                     online, over the admin API
//	pxe-pilot restore <file> --to <dir>         offline, into a new directory
//	pxe-pilot recover --from <dir> --to <dir>   offline salvage of a damaged one

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/httpapi"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// Exit status of recover when it salvaged a database but could not read all
// of the source: scripts can tell it from success (0) and failure (1).
const exitSalvagedWithLosses = 3

// defaultServer is the client's default appliance URL (as runClient).
func defaultServer(getenv func(string) string) string {
	if s := getenv("PXE_SERVER"); s != "" {
		return s
	}
	port := getenv("PORT")
	if port == "" {
		port = "8000"
	}
	host := "127.0.0.1"
	if a, err := netip.ParseAddr(getenv("PXE_LISTEN_ADDR")); err == nil && !a.IsUnspecified() {
		host = a.String()
	}
	return "http://" + net.JoinHostPort(host, port)
}

// parseInterleaved parses flags given before and after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pxe-pilot backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", defaultServer(getenv), "appliance URL (env PXE_SERVER)")
	key := fs.String("api-key", getenv("ADMIN_API_KEY"), "admin API key (env ADMIN_API_KEY)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long the whole backup may take")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "pxe-pilot: usage: pxe-pilot backup <file> [--server URL] [--api-key KEY]")
		return 2
	}
	file := pos[0]
	if _, err := os.Lstat(file); err == nil {
		fmt.Fprintf(stderr, "pxe-pilot: backup: %s already exists; give a new file name\n", file)
		return 2
	}
	n, err := backupTo(ctx, strings.TrimRight(*server, "/")+"/backup", *key, *timeout, file)
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "backup of %s written to %s (%d bytes); restore it with: pxe-pilot restore %s --to <new dir>\n", *server, file, n, file)
	return 0
}

// backupTo downloads a backup into file, through a temporary file renamed
// only once the appliance's trailer says the backup is complete.
func backupTo(ctx context.Context, u, key string, timeout time.Duration, file string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := send(ctx, http.MethodGet, u, key, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("%s: HTTP %d %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".partial-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("download cut short after %d bytes (nothing written to %s): %w", n, file, err)
	}
	if st := resp.Trailer.Get(httpapi.BackupStatusTrailer); st != "ok" {
		if st == "" {
			st = "no completion status (an appliance too old for backups, or a cut connection)"
		}
		return n, fmt.Errorf("the appliance did not finish the backup: %s; nothing written to %s", st, file)
	}
	// The end marker and checksum the appliance wrote, checked on what
	// reached the disk here: restore checks the same before it writes.
	if _, err := store.VerifyBackup(tmp.Name()); err != nil {
		return n, fmt.Errorf("the downloaded backup does not verify, nothing written to %s: %w", file, err)
	}
	return n, os.Rename(tmp.Name(), file)
}

// storeLogger shows the store's warnings and errors on stderr.
func storeLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func runRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pxe-pilot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "new, empty database directory to restore into")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || *to == "" {
		fmt.Fprintln(stderr, "pxe-pilot: usage: pxe-pilot restore <backup file> --to <new dir>")
		return 2
	}
	n, err := store.Restore(pos[0], *to, storeLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %d nodes from %s into %s; start the appliance with DATABASE_PATH=%s\n", n, pos[0], *to, *to)
	return 0
}

func runRecover(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pxe-pilot recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "damaged database directory (only read)")
	to := fs.String("to", "", "new, empty directory for what can be salvaged")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 || *from == "" || *to == "" {
		fmt.Fprintln(stderr, "pxe-pilot: usage: pxe-pilot recover --from <damaged dir> --to <new dir>")
		return 2
	}
	rep, err := store.Recover(*from, *to, storeLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: recover: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "salvaged %d nodes and %d boot events from %s into %s (%s was not changed)\n", rep.Nodes, rep.Events, *from, *to, *from)
	for _, u := range rep.Unreadable {
		fmt.Fprintf(stdout, "could not read: %s\n", u)
	}
	if len(rep.LostAcks) > 0 {
		fmt.Fprintf(stdout, "%d nodes lost their latest acknowledged change (a reinstall request, a local-boot setting, an install report or a deletion); check them and set them again:\n", len(rep.LostAcks))
		for _, m := range rep.LostAcks {
			fmt.Fprintf(stdout, "  %s\n", m)
		}
	}
	if len(rep.Unreadable) > 0 || len(rep.LostAcks) > 0 {
		fmt.Fprintf(stdout, "start the appliance with DATABASE_PATH=%s once you have checked the above\n", *to)
		return exitSalvagedWithLosses
	}
	fmt.Fprintf(stdout, "everything was readable; start the appliance with DATABASE_PATH=%s\n", *to)
	return 0
}
