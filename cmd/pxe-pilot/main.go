// Command pxe-pilot is the PXE Pilot network-boot appliance and a small
// client for its admin API.
//
//	pxe-pilot [serve] [flags]      run the appliance
//	pxe-pilot nodes                list nodes
//	pxe-pilot reinstall <mac>      reinstall a machine on its next boot
//	pxe-pilot cancel <mac>         cancel a pending reinstall
//	pxe-pilot health               exit 0 when the appliance is healthy
//	pxe-pilot backup <file>        back up the running appliance's database
//	pxe-pilot restore <file> --to <dir>, pxe-pilot recover --from <dir> --to <dir>
//
// Run "pxe-pilot help" for everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `pxe-pilot: network-boot appliance (ProxyDHCP, TFTP, HTTP) deciding per machine
whether it reinstalls or boots its local disk.

Usage:
  pxe-pilot [serve] [flags]     run the appliance (pxe-pilot serve -h: settings)
  pxe-pilot nodes               list known nodes
  pxe-pilot node <mac>          show one node
  pxe-pilot events <mac>        show a node's recent boots
  pxe-pilot reinstall <mac>     reinstall the machine on its next network boot
  pxe-pilot cancel <mac>        cancel a pending reinstall
  pxe-pilot forget <mac>        delete a node and its history
  pxe-pilot installed <mac>     report an installation as finished
  pxe-pilot profiles            list the boot profiles in force, the groups, the default
  pxe-pilot assign <mac> <profile|->
                                give a machine a profile (- clears the assignment)
  pxe-pilot label <mac> key=value...
                                replace a machine's labels (they place it in groups)
  pxe-pilot explain <mac>       what the machine would boot now, and which rule decided
  pxe-pilot health              exit 0 if the appliance answers /health
  pxe-pilot backup <file>       write a backup of the running appliance's database
  pxe-pilot restore <file> --to <new dir>
                                load a backup into a new database directory (offline)
  pxe-pilot recover --from <damaged dir> --to <new dir>
                                salvage what is readable into a new directory and
                                report what was not (offline; the source is only read)
  pxe-pilot import --from <database dir | backup file>
                                copy a Badger database into the etcd store PXE_STORE
                                names (moving to several appliances)
  pxe-pilot version             print the version

Client flags (after the command): --server URL (env PXE_SERVER, default
http://<PXE_LISTEN_ADDR or 127.0.0.1>:$PORT), --api-key KEY (env
ADMIN_API_KEY), --json.
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		cmd = "help" // the commands; "serve -h" lists the settings
	case len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-'):
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, getenv, stderr)
	case "version":
		fmt.Fprintln(stdout, "pxe-pilot", version)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "backup": // backup.go
		return runBackup(ctx, args, getenv, stdout, stderr)
	case "restore":
		defer onInterrupt(ctx, stderr, "restore", "if the --to directory exists, it is incomplete: delete it, then run restore again")()
		return runRestore(args, stdout, stderr)
	case "recover":
		defer onInterrupt(ctx, stderr, "recover", "the --to directory is incomplete: delete it, then run recover again (the --from directory was not changed)")()
		return runRecover(args, stdout, stderr)
	case "import": // import.go
		defer onInterrupt(ctx, stderr, "import", "run it again to import the rest: what is already in etcd is skipped")()
		return runImport(args, getenv, stdout, stderr)
	}
	if c, ok := clientCommands[cmd]; ok {
		return runClient(ctx, c, args, getenv, stdout, stderr)
	}
	fmt.Fprintf(stderr, "pxe-pilot: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// onInterrupt makes SIGINT and SIGTERM (which end ctx) stop an offline
// command that cannot be cancelled half-way, at once, saying what is left
// behind, with exit code 130; they used to be caught and ignored until the
// command ended. The returned function stops watching, and returns only once
// the watcher has stopped: main cancels ctx right after the command returns,
// and a watcher still running then could take that for a signal (a failed
// restore exited 130, "interrupted", one run in three).
func onInterrupt(ctx context.Context, stderr io.Writer, cmd, left string) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "pxe-pilot: %s interrupted; %s\n", cmd, left)
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return func() { close(done); <-stopped }
}

// exitInterrupted is the shell's code for a command ended by SIGINT.
const exitInterrupted = 130

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	hup, stopHUP := catchHUP() // first: a SIGHUP while the store opens must not end the process
	defer stopHUP()
	cfg, err := loadConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: invalid configuration:\n%s\n", indent(err.Error()))
		return 2
	}
	log := newLogger(cfg, stderr)
	if err := serve(ctx, cfg, log, hup); err != nil {
		log.Error("pxe-pilot stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func indent(s string) string {
	out := "  "
	for _, r := range s {
		out += string(r)
		if r == '\n' {
			out += "  "
		}
	}
	return out
}
