package profiles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// Variables are the names a template may use, each a string unless said:
//
//	mac, mac_hyphen      52:54:00:12:34:56, 52-54-00-12-34-56
//	ip                   the machine's address as the appliance saw it
//	uuid, serial, manufacturer, product, platform, buildarch
//	                     what iPXE reported (reduced to [A-Za-z0-9._:/+=@,-],
//	                     anything else becomes '_')
//	hostname             the node's hostname, else pxe-<12 hex digits>
//	labels, vars         maps: the node's labels; the profile's vars overlaid
//	                     by the node's ({{.vars.disk}}, {{index .labels "rack"}})
//	base_url             PXE_BASE_URL
//	profile              this profile's name
//	token                the install's token (secret; in URLs only)
//	files_url            <base>/install/<mac>/<token>/ : the served files
//	                     live under it ({{.files_url}}preseed.cfg)
//	installed_url, failed_url, progress_url
//	                     the call-backs (POST), token included
var Variables = []string{
	"mac", "mac_hyphen", "ip", "uuid", "serial", "manufacturer", "product", "platform", "buildarch",
	"hostname", "labels", "vars", "base_url", "profile", "token",
	"files_url", "installed_url", "failed_url", "progress_url",
}

var known = func() map[string]bool {
	m := make(map[string]bool, len(Variables))
	for _, v := range Variables {
		m[v] = true
	}
	return m
}()

// Data is what a template is rendered with: every name in Variables.
type Data map[string]any

// funcs are the template functions besides text/template's own.
var funcs = template.FuncMap{
	// json quotes a string for a JSON document (ignition).
	"json": func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	},
	// shquote quotes a string for a POSIX shell (preseed and kickstart commands).
	"shquote": func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" },
	// pathescape escapes a URL path segment.
	"pathescape": url.PathEscape,
}

// Template is one profile field: Go text/template text over Data, or, for
// the default profile built from the seed's variables, a URL with the
// seed's ${mac}/${mac_hyphen}/${ip} placeholders (Substitute).
type Template struct {
	Source string
	t      *template.Template
	seed   bool
	suffix string // seed only: appended after substitution (PXE_KERNEL_ARGS)
}

// ParseTemplate parses src and checks every variable it uses against
// Variables, so an unknown name is an error when the profiles load, never at
// boot. what names the field in errors ("profile ubuntu, field cmdline").
func ParseTemplate(what, src string) (*Template, error) {
	t, err := template.New(what).Funcs(funcs).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: template does not parse: %w", what, err)
	}
	var bad []string
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walk(tt.Tree.Root, true, &bad)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("%s: unknown template variable %s (known: %s)", what, strings.Join(dedupe(bad), ", "), strings.Join(Variables, ", "))
	}
	// Execute once against sample values, so what only shows when running
	// ({{template "missing"}}, a function given the wrong type) is a load
	// error too.
	if err := t.Execute(io.Discard, sample); err != nil {
		return nil, fmt.Errorf("%s: template fails on sample values: %w", what, err)
	}
	return &Template{Source: src, t: t}, nil
}

// sample has every variable, with values of the right types.
var sample = func() Data {
	d := Data{}
	for _, v := range Variables {
		d[v] = "x"
	}
	d["labels"] = map[string]string{}
	d["vars"] = map[string]string{}
	return d
}()

// seedTemplate wraps a seed variable's value (PXE_UBUNTU_KERNEL_URL, …).
func seedTemplate(src string) *Template { return &Template{Source: src, seed: true} }

// MustParse is ParseTemplate for sources known to be good (presets, tests).
func MustParse(what, src string) *Template {
	t, err := ParseTemplate(what, src)
	if err != nil {
		panic(err)
	}
	return t
}

// Render executes the template. Templates that passed ParseTemplate fail
// here only on a function error (json of a bad value).
func (t *Template) Render(d Data) (string, error) {
	if t == nil {
		return "", nil
	}
	if t.seed {
		return Substitute(t.Source, str(d["mac"]), str(d["mac_hyphen"]), str(d["ip"])) + t.suffix, nil
	}
	var b bytes.Buffer
	if err := t.t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

func str(v any) string { s, _ := v.(string); return s }

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// walk collects the first name of every field chain ({{.foo.bar}} → foo,
// {{$.foo}} → foo) that is not a known variable. root says whether dot is
// the template's data here: inside the body of a {{range}} or {{with}} it
// is that value (".x" is a key of a map there, not checked), but "$" is
// still the data, and so is dot in their {{else}}.
func walk(n parse.Node, root bool, bad *[]string) {
	check := func(name string) {
		if !known[name] {
			*bad = append(*bad, "."+name)
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, root, bad)
		}
	case *parse.ActionNode:
		walk(n.Pipe, root, bad)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walk(c, root, bad)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, root, bad)
		}
	case *parse.FieldNode:
		if root && len(n.Ident) > 0 {
			check(n.Ident[0])
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			check(n.Ident[1])
		}
	case *parse.ChainNode:
		walk(n.Node, root, bad)
	case *parse.IfNode:
		walk(n.Pipe, root, bad)
		walk(n.List, root, bad)
		walk(n.ElseList, root, bad)
	case *parse.RangeNode:
		walk(n.Pipe, root, bad)
		walk(n.List, false, bad)
		walk(n.ElseList, root, bad)
	case *parse.WithNode:
		walk(n.Pipe, root, bad)
		walk(n.List, false, bad)
		walk(n.ElseList, root, bad)
	case *parse.TemplateNode:
		walk(n.Pipe, root, bad)
	}
}
