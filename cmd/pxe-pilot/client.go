package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// clientCommand is one admin-API call of the command-line client.
type clientCommand struct {
	method string
	path   string // "%s" is replaced by the MAC when takesMAC
	// takesMAC: the command needs exactly one MAC argument.
	takesMAC bool
	// query puts the MAC in ?mac= instead of the path.
	query bool
	print func(w io.Writer, body []byte) error
}

var clientCommands = map[string]clientCommand{
	"nodes":     {method: http.MethodGet, path: "/nodes", print: printNodes},
	"node":      {method: http.MethodGet, path: "/nodes/%s", takesMAC: true, print: printNode},
	"events":    {method: http.MethodGet, path: "/nodes/%s/events", takesMAC: true, print: printEvents},
	"reinstall": {method: http.MethodPost, path: "/nodes/%s/reinstall", takesMAC: true, print: printNode},
	"cancel":    {method: http.MethodDelete, path: "/nodes/%s/reinstall", takesMAC: true, print: printNode},
	"forget":    {method: http.MethodDelete, path: "/nodes/%s", takesMAC: true, print: printRaw},
	"installed": {method: http.MethodPost, path: "/installed", takesMAC: true, query: true, print: printNode},
	"health":    {method: http.MethodGet, path: "/health", print: printRaw},
}

func runClient(ctx context.Context, c clientCommand, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pxe-pilot client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := getenv("PORT")
	if port == "" {
		port = "8000"
	}
	// Default: the appliance on this host, where it listens. With
	// PXE_LISTEN_ADDR bound to one address, 127.0.0.1 would not answer
	// (the Docker HEALTHCHECK runs this with the appliance's environment).
	def := getenv("PXE_SERVER")
	if def == "" {
		host := "127.0.0.1"
		if a, err := netip.ParseAddr(getenv("PXE_LISTEN_ADDR")); err == nil && !a.IsUnspecified() {
			host = a.String()
		}
		def = "http://" + net.JoinHostPort(host, port)
	}
	server := fs.String("server", def, "appliance URL (env PXE_SERVER)")
	key := fs.String("api-key", getenv("ADMIN_API_KEY"), "admin API key (env ADMIN_API_KEY)")
	asJSON := fs.Bool("json", false, "print the API's JSON as it is")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the appliance")
	// Accept flags before and after the MAC.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	path := c.path
	switch {
	case c.takesMAC && len(pos) != 1:
		fmt.Fprintln(stderr, "pxe-pilot: this command takes one MAC address")
		return 2
	case !c.takesMAC && len(pos) != 0:
		fmt.Fprintf(stderr, "pxe-pilot: unexpected argument %q\n", pos[0])
		return 2
	case c.takesMAC:
		mac, err := store.ParseMAC(pos[0])
		if err != nil {
			fmt.Fprintln(stderr, "pxe-pilot:", err)
			return 2
		}
		if c.query {
			path += "?mac=" + url.QueryEscape(string(mac))
		} else {
			path = fmt.Sprintf(path, mac)
		}
	}
	body, code, err := call(ctx, c.method, strings.TrimRight(*server, "/")+path, *key, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "pxe-pilot:", err)
		return 1
	}
	if code/100 != 2 {
		var e struct{ Error, Status string }
		if json.Unmarshal(body, &e) == nil && (e.Error != "" || e.Status != "") {
			fmt.Fprintf(stderr, "pxe-pilot: %s: %d %s\n", *server, code, strings.TrimSpace(e.Status+" "+e.Error))
		} else {
			fmt.Fprintf(stderr, "pxe-pilot: %s: HTTP %d\n", *server, code)
		}
		return 1
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	if err := c.print(stdout, body); err != nil {
		fmt.Fprintln(stderr, "pxe-pilot: unexpected answer:", err)
		return 1
	}
	return 0
}

func call(ctx context.Context, method, u, key string, timeout time.Duration) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("bad --server: %w", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, 0, fmt.Errorf("cannot reach the appliance at %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return body, resp.StatusCode, err
}

func printRaw(w io.Writer, body []byte) error {
	_, err := w.Write(body)
	return err
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func printNodes(w io.Writer, body []byte) error {
	var v struct{ Nodes []store.Node }
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tSTATE\tLAST SEEN\tLAST IP\tBOOTS\tPLATFORM")
	for _, n := range v.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", n.MAC, n.State, when(n.LastSeen), dash(n.LastIP), n.BootCount, dash(n.Facts.Platform))
	}
	return tw.Flush()
}

func printNode(w io.Writer, body []byte) error {
	var n store.Node
	if err := json.Unmarshal(body, &n); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"MAC", string(n.MAC)}, {"State", string(n.State)}, {"Reinstall", fmt.Sprint(n.Reinstall)},
		{"Last seen", when(n.LastSeen)}, {"Last IP", dash(n.LastIP)}, {"Boots", fmt.Sprint(n.BootCount)},
		{"Installs", fmt.Sprint(n.InstallCount)}, {"Local boot", dash(n.LocalBootScript)},
		{"Platform", dash(n.Facts.Platform)}, {"Product", dash(strings.TrimSpace(n.Facts.Manufacturer + " " + n.Facts.Product))},
		{"Serial", dash(n.Facts.Serial)}, {"Created", when(&n.CreatedAt)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func printEvents(w io.Writer, body []byte) error {
	var v struct{ Events []store.Event }
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tIP\tDECISION\tREASON")
	for _, e := range v.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", when(&e.Time), dash(e.IP), e.Decision, e.Reason)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
