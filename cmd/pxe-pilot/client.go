package main

import (
	"bytes"
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
	"sort"
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
	// pages: follow the API's pages (?limit=&cursor=) and print each as it
	// comes, so a fleet of any size never sits in memory at once.
	pages bool
	// more builds a request from the arguments after the MAC, for
	// commands that take them (assign, label); nil means none are allowed.
	more  func(mac store.MAC, args []string) (method, path string, body any, err error)
	print func(w io.Writer, body []byte) error
}

var clientCommands = map[string]clientCommand{
	"nodes":     {method: http.MethodGet, path: "/nodes", pages: true},
	"node":      {method: http.MethodGet, path: "/nodes/%s", takesMAC: true, print: printNode},
	"events":    {method: http.MethodGet, path: "/nodes/%s/events", takesMAC: true, print: printEvents},
	"reinstall": {method: http.MethodPost, path: "/nodes/%s/reinstall", takesMAC: true, print: printNode},
	"cancel":    {method: http.MethodDelete, path: "/nodes/%s/reinstall", takesMAC: true, print: printNode},
	"forget":    {method: http.MethodDelete, path: "/nodes/%s", takesMAC: true, print: printRaw},
	"installed": {method: http.MethodPost, path: "/installed", takesMAC: true, query: true, print: printNode},
	"health":    {method: http.MethodGet, path: "/health", print: printRaw},
	"profiles":  {method: http.MethodGet, path: "/profiles", print: printProfiles},
	"explain":   {method: http.MethodGet, path: "/nodes/%s/decision", takesMAC: true, print: printDecision},
	"assign":    {takesMAC: true, more: assignArgs, print: printNode},
	"label":     {takesMAC: true, more: labelArgs, print: printNode},
}

// assignArgs: assign <mac> <profile> sets the node's profile; "-" clears it.
func assignArgs(mac store.MAC, args []string) (string, string, any, error) {
	if len(args) != 1 {
		return "", "", nil, errors.New("usage: pxe-pilot assign <mac> <profile> (or - to clear)")
	}
	path := "/nodes/" + string(mac) + "/profile"
	if args[0] == "-" {
		return http.MethodDelete, path, nil, nil
	}
	return http.MethodPut, path, map[string]string{"profile": args[0]}, nil
}

// labelArgs: label <mac> key=value … replaces the node's labels (none: clears).
func labelArgs(mac store.MAC, args []string) (string, string, any, error) {
	labels := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return "", "", nil, fmt.Errorf("label %q: write key=value", a)
		}
		labels[k] = v
	}
	return http.MethodPatch, "/nodes/" + string(mac), map[string]any{"labels": labels}, nil
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
	filter := map[string]*string{}
	if c.pages {
		for _, f := range []string{"state", "profile", "label", "seen_since", "q"} {
			filter[f] = fs.String(strings.ReplaceAll(f, "_", "-"), "", "only nodes with this "+f+" (see GET /nodes)")
		}
	}
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
	path, method := c.path, c.method
	var reqBody any
	switch {
	case c.takesMAC && c.more != nil && len(pos) >= 1:
		mac, err := store.ParseMAC(pos[0])
		if err == nil {
			method, path, reqBody, err = c.more(mac, pos[1:])
		}
		if err != nil {
			fmt.Fprintln(stderr, "pxe-pilot:", err)
			return 2
		}
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
	if c.pages {
		return followPages(ctx, strings.TrimRight(*server, "/")+path, *key, filter, *asJSON, *timeout, stdout, stderr)
	}
	body, code, err := call(ctx, method, strings.TrimRight(*server, "/")+path, *key, reqBody, *timeout)
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

// followPages lists nodes a page at a time.
func followPages(ctx context.Context, base, key string, filter map[string]*string, asJSON bool, timeout time.Duration, stdout, stderr io.Writer) int {
	q := url.Values{"limit": {"1000"}}
	for k, v := range filter {
		if *v != "" {
			q.Set(k, *v)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if asJSON {
		// One document for every page, {"nodes":[…]} as GET /nodes without
		// a limit gives it; the pages' cursors are this command's business.
		io.WriteString(stdout, `{"nodes":[`)
	} else {
		fmt.Fprintln(tw, nodesHeader)
	}
	first := true
	for page := 0; ; page++ {
		body, code, err := call(ctx, http.MethodGet, base+"?"+q.Encode(), key, nil, timeout)
		if err != nil {
			fmt.Fprintln(stderr, "pxe-pilot:", err)
			return 1
		}
		if code/100 != 2 {
			var e struct{ Error string }
			json.Unmarshal(body, &e)
			fmt.Fprintf(stderr, "pxe-pilot: %s: %d %s\n", base, code, e.Error)
			return 1
		}
		var v struct {
			Nodes []json.RawMessage
			Next  string
		}
		if err := json.Unmarshal(body, &v); err != nil {
			fmt.Fprintln(stderr, "pxe-pilot: unexpected answer:", err)
			return 1
		}
		for _, raw := range v.Nodes {
			if asJSON {
				if !first {
					io.WriteString(stdout, ",")
				}
				stdout.Write(raw)
				first = false
				continue
			}
			var n store.Node
			if err := json.Unmarshal(raw, &n); err != nil {
				fmt.Fprintln(stderr, "pxe-pilot: unexpected answer:", err)
				return 1
			}
			nodeRow(tw, n)
		}
		tw.Flush()
		if v.Next == "" {
			if asJSON {
				io.WriteString(stdout, "]}\n")
			}
			return 0
		}
		q.Set("cursor", v.Next)
	}
}

func call(ctx context.Context, method, u, key string, reqBody any, timeout time.Duration) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if reqBody != nil {
		b, err := json.Marshal(reqBody)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := send(ctx, method, u, key, rd)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return body, resp.StatusCode, err
}

// send makes one admin-API request (a JSON body when body is not nil) and
// words a failure to reach the appliance for a person. The caller closes
// the response body.
func send(ctx context.Context, method, u, key string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("bad --server: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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
		return nil, fmt.Errorf("cannot reach the appliance at %s: %w", u, err)
	}
	return resp, nil
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

const nodesHeader = "MAC\tSTATE\tPROFILE\tOUTCOME\tLAST SEEN\tLAST IP\tBOOTS\tPLATFORM"

func nodeRow(w io.Writer, n store.Node) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.MAC, n.State, dash(n.Profile), outcome(n), when(n.LastSeen), dash(n.LastIP), n.BootCount, dash(n.Facts.Platform))
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
		{"Profile", dash(n.Profile)}, {"Hostname", dash(n.Hostname)}, {"Labels", kv(n.Labels)}, {"Vars", kv(n.Vars)},
		{"Last install", install(n.Install)}, {"Outcome", outcome(n)},
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
	fmt.Fprintln(tw, "TIME\tIP\tEVENT\tPROFILE\tREASON")
	for _, e := range v.Events {
		what := e.Decision
		if e.Type != "" {
			what = e.Type
		}
		reason := e.Reason
		if e.Rule != "" {
			reason = strings.TrimSpace(reason + " [" + e.Rule + "]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", when(&e.Time), dash(e.IP), what, dash(e.Profile), reason)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// outcome is a node's last install result with its reason ("failed: stalled").
func outcome(n store.Node) string {
	if n.Install == nil || n.Install.Outcome == "" {
		if n.State == store.StateInstalling {
			return "running"
		}
		return "-"
	}
	if n.Install.Reason != "" {
		return n.Install.Outcome + ": " + n.Install.Reason
	}
	return n.Install.Outcome
}

func install(in *store.Install) string {
	if in == nil {
		return "-"
	}
	s := fmt.Sprintf("profile %s (%s) started %s", in.Profile, dash(in.Rule), when(&in.Started))
	if in.Progress != "" {
		s += ", last progress: " + in.Progress
	}
	return s
}

func kv(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func printProfiles(w io.Writer, body []byte) error {
	var v struct {
		Default  string
		File     string
		Profiles []struct {
			Name, Kind, Preset, Source, Loader string
			Files, Missing                     []string
		}
		Groups []struct{ Name, Profile, Source string }
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tKIND\tPRESET\tFILES\tDEFINED AT\tNOTE")
	for _, p := range v.Profiles {
		note := ""
		if p.Name == v.Default {
			note = "default"
		}
		if len(p.Missing) > 0 {
			note = strings.TrimSpace(note + " unset: " + strings.Join(p.Missing, ", "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Kind, dash(p.Preset), dash(strings.Join(p.Files, ",")), p.Source, note)
	}
	if len(v.Groups) > 0 {
		fmt.Fprintln(tw, "\nGROUP (first match wins)\tPROFILE\tDEFINED AT")
		for _, g := range v.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Name, g.Profile, g.Source)
		}
	}
	return tw.Flush()
}

func printDecision(w io.Writer, body []byte) error {
	var v struct{ MAC, State, Decision, Reason, Profile, Rule, IPXE string }
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s (%s) would get: %s\nreason: %s\n", v.MAC, v.State, v.Decision, v.Reason)
	if v.Profile != "" {
		fmt.Fprintf(w, "profile: %s, chosen by %s\n", v.Profile, v.Rule)
	}
	fmt.Fprintf(w, "\n%s", v.IPXE)
	return nil
}
