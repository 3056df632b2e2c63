package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/pxe-pilot/pxe-pilot/internal/proctest"
	yaml "go.yaml.in/yaml/v3"
)

const repo = ".." // tests run in deploy/

// testVersion is stamped into the binaries this test builds, through the
// Dockerfile's own -X main.version=${VERSION}.
var testVersion = fmt.Sprintf("deploytest-%d", os.Getpid())

// applianceBin is the native build made by TestMain with the Dockerfile's flags.
var applianceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pxe-pilot-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests:", err)
		os.Exit(1)
	}
	// World-readable: the capability test runs the binary as a non-root user.
	os.Chmod(dir, 0o755)
	code := func() int {
		db, err := parseDockerBuild(filepath.Join(repo, "Dockerfile"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "deploy tests:", err)
			return 1
		}
		applianceBin = filepath.Join(dir, "pxe-pilot")
		if err := db.build(runtime.GOOS, runtime.GOARCH, applianceBin); err != nil {
			fmt.Fprintln(os.Stderr, "deploy tests: building the appliance with the Dockerfile's command:", err)
			return 1
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Dockerfile and Makefile

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY...
	args string
	line int
}

func readDockerfile(path string) ([]instruction, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\"))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: unterminated continuation at the end of the file", path)
	}
	return out, nil
}

// shellWords splits a command line the way sh would for the simple quoting the
// build lines use (double and single quotes, no escapes inside quotes).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced %c quote in %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// dockerBuild is the `go build` command of the Dockerfile, as parsed.
type dockerBuild struct {
	env     map[string]string // assignments before `go build`
	flags   []string          // build flags, -o excluded
	ldflags string
	out     string
	pkg     string
	index   int // instruction index of the RUN
}

var runMount = regexp.MustCompile(`^--[a-z-]+=\S+$`)

func parseDockerBuild(path string) (*dockerBuild, error) {
	ins, err := readDockerfile(path)
	if err != nil {
		return nil, err
	}
	var found *dockerBuild
	for i, in := range ins {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%s: more than one RUN with `go build` (lines %d and %d)", path, ins[found.index].line, in.line)
		}
		words, err := shellWords(in.args)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, in.line, err)
		}
		b := &dockerBuild{env: map[string]string{}, index: i}
		j := 0
		for j < len(words) && runMount.MatchString(words[j]) {
			j++ // --mount=type=cache,...
		}
		for ; j < len(words) && strings.Contains(words[j], "=") && words[j] != "go"; j++ {
			k, v, _ := strings.Cut(words[j], "=")
			b.env[k] = v
		}
		if j+1 >= len(words) || words[j] != "go" || words[j+1] != "build" {
			return nil, fmt.Errorf("%s:%d: expected `[VAR=value...] go build ...`, got %q", path, in.line, in.args)
		}
		rest := words[j+2:]
		for k := 0; k < len(rest); k++ {
			w := rest[k]
			switch {
			case w == "&&" || w == ";":
				return nil, fmt.Errorf("%s:%d: the go build RUN must be a single command", path, in.line)
			case w == "-o":
				if k+1 == len(rest) {
					return nil, fmt.Errorf("%s:%d: -o without a value", path, in.line)
				}
				b.out = rest[k+1]
				k++
			case w == "-ldflags":
				if k+1 == len(rest) {
					return nil, fmt.Errorf("%s:%d: -ldflags without a value", path, in.line)
				}
				b.ldflags = rest[k+1]
				b.flags = append(b.flags, w, rest[k+1])
				k++
			case strings.HasPrefix(w, "-"):
				b.flags = append(b.flags, w)
			default:
				if b.pkg != "" {
					return nil, fmt.Errorf("%s:%d: more than one package in go build: %q %q", path, in.line, b.pkg, w)
				}
				b.pkg = w
			}
		}
		found = b
	}
	if found == nil {
		return nil, fmt.Errorf("%s: no RUN instruction with `go build`", path)
	}
	return found, nil
}

// expand substitutes the build arguments the Dockerfile's build line uses.
func (b *dockerBuild) expand(s, goos, goarch string) string {
	return os.Expand(s, func(k string) string {
		switch k {
		case "TARGETOS":
			return goos
		case "TARGETARCH":
			return goarch
		case "VERSION":
			return testVersion
		}
		return "${" + k + "}" // left visible, so a check below fails on it
	})
}

// build runs the Dockerfile's go build for goos/goarch, from the repo root.
func (b *dockerBuild) build(goos, goarch, out string) error {
	args := []string{"build"}
	for _, f := range b.flags {
		args = append(args, b.expand(f, goos, goarch))
	}
	args = append(args, "-o", out, b.pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = repo
	cmd.Env = os.Environ()
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+b.expand(v, goos, goarch))
	}
	if strings.Contains(strings.Join(cmd.Args, " "), "${") {
		return fmt.Errorf("unexpanded build argument in %q", cmd.Args)
	}
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, outb)
	}
	return nil
}

// makeVar returns the value of `NAME := value` or `NAME ?= value` in the Makefile.
func makeVar(t *testing.T, mk, name string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*[:?]?=\s*(.*)$`)
	m := re.FindStringSubmatch(mk)
	if m == nil {
		t.Fatalf("Makefile: no %s variable", name)
	}
	return strings.TrimSpace(m[1])
}

// makeRecipe returns the recipe lines of a Makefile target, continuations joined.
func makeRecipe(t *testing.T, mk, target string) string {
	t.Helper()
	lines := strings.Split(mk, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, target+":") {
			continue
		}
		var b strings.Builder
		for _, r := range lines[i+1:] {
			if !strings.HasPrefix(r, "\t") {
				break
			}
			b.WriteString(strings.TrimSuffix(strings.TrimSpace(r), "\\"))
			b.WriteString(" ")
		}
		return b.String()
	}
	t.Fatalf("Makefile: no %q target", target)
	return ""
}

func TestDockerfileAndMakefileAgree(t *testing.T) {
	b, err := parseDockerBuild(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := readDockerfile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mkData, err := os.ReadFile(filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	mk := string(mkData)

	// The build line: static, reproducible, stripped, stamped, cross-compiled.
	for k, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "$TARGETOS", "GOARCH": "$TARGETARCH"} {
		if got := b.env[k]; got != want {
			t.Errorf("Dockerfile go build: %s=%q, want %q", k, got, want)
		}
	}
	if !slices.Contains(b.flags, "-trimpath") {
		t.Errorf("Dockerfile go build lacks -trimpath: %q", b.flags)
	}
	if b.pkg != "./cmd/pxe-pilot" {
		t.Errorf("Dockerfile builds %q, want ./cmd/pxe-pilot", b.pkg)
	}
	mkLD := makeVar(t, mk, "LDFLAGS")
	if got, want := strings.ReplaceAll(b.ldflags, "${VERSION}", "$(VERSION)"), mkLD; got != want {
		t.Errorf("ldflags differ: Dockerfile %q, Makefile %q", b.ldflags, mkLD)
	}
	for _, f := range []string{"-s", "-w", "-X main.version="} {
		if !strings.Contains(b.ldflags, f) {
			t.Errorf("Dockerfile -ldflags %q lacks %q", b.ldflags, f)
		}
	}
	for _, target := range []string{"build", "build-all"} {
		r := makeRecipe(t, mk, target)
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "$(LDFLAGS)"`, "./cmd/pxe-pilot"} {
			if !strings.Contains(r, want) {
				t.Errorf("Makefile %s recipe lacks %s: %q", target, want, r)
			}
		}
	}
	if v := makeVar(t, mk, "VERSION"); !strings.Contains(v, "git describe --tags --always --dirty") {
		t.Errorf("Makefile VERSION = %q, want it from git describe --tags --always --dirty", v)
	}
	if p := makeVar(t, mk, "PLATFORMS"); p != "linux/amd64 linux/arm64" {
		t.Errorf("Makefile PLATFORMS = %q", p)
	}

	// The iPXE files Make embeds are the ones the image embeds, and they are
	// in assets/ipxe before go build runs.
	ipxeFiles := strings.Fields(makeVar(t, mk, "IPXE_FILES"))
	var ipxeStage, buildStage string
	copiedAt := -1
	for i, in := range ins {
		switch {
		case in.cmd == "FROM" && strings.HasSuffix(in.args, " AS ipxe"):
			ipxeStage = in.args
		case in.cmd == "FROM" && strings.HasSuffix(in.args, " AS build"):
			buildStage = in.args
		case in.cmd == "RUN" && ipxeStage != "" && buildStage == "":
			if !strings.Contains(in.args, "install -y --no-install-recommends ipxe") {
				t.Errorf("Dockerfile:%d: the ipxe stage does not install Debian's ipxe package", in.line)
			}
			for _, f := range ipxeFiles {
				if !strings.Contains(in.args, "/usr/lib/ipxe/"+f) {
					t.Errorf("Dockerfile:%d: the ipxe stage does not copy %s", in.line, f)
				}
			}
			if !strings.Contains(in.args, "cp -L") {
				t.Errorf("Dockerfile:%d: ipxe.efi is a symlink into /boot in Debian; copy with cp -L", in.line)
			}
		case in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=ipxe ") && strings.HasSuffix(in.args, " assets/ipxe/"):
			copiedAt = i
		}
	}
	for name, from := range map[string]string{"ipxe": ipxeStage, "build": buildStage} {
		if !strings.HasPrefix(from, "--platform=$BUILDPLATFORM ") {
			t.Errorf("Dockerfile stage %s = %q: want --platform=$BUILDPLATFORM (cross-compile, no emulation)", name, from)
		}
	}
	if !strings.Contains(buildStage, "golang:${GO_VERSION}-bookworm") || !strings.Contains(string(must(os.ReadFile(filepath.Join(repo, "Dockerfile")))), "ARG GO_VERSION=1.26\n") {
		t.Errorf("Dockerfile build stage %q: want golang:1.26-bookworm", buildStage)
	}
	if copiedAt < 0 || copiedAt > b.index {
		t.Errorf("Dockerfile: COPY --from=ipxe ... assets/ipxe/ must come before go build (instruction %d, build %d)", copiedAt, b.index)
	}

	// Runtime: non-root, the documented volume, database path and health check.
	final := map[string][]string{}
	for _, in := range ins[lastFrom(ins):] {
		final[in.cmd] = append(final[in.cmd], in.args)
	}
	want := map[string]string{
		"USER":        "65532:65532",
		"ENV":         "DATABASE_PATH=/data/pxe.db",
		"VOLUME":      "/data",
		"HEALTHCHECK": `CMD ["/pxe-pilot","health"]`,
		"ENTRYPOINT":  `["/pxe-pilot"]`,
		"CMD":         `["serve"]`,
	}
	for k, v := range want {
		if len(final[k]) != 1 || !strings.HasSuffix(final[k][0], v) {
			t.Errorf("final stage %s = %q, want one ending in %q", k, final[k], v)
		}
	}
	expose := strings.Join(final["EXPOSE"], " ")
	for _, p := range []string{"8000/tcp", "69/udp", "67/udp", "4011/udp"} {
		if !strings.Contains(expose, p) {
			t.Errorf("EXPOSE %q lacks %s", expose, p)
		}
	}
}

func lastFrom(ins []instruction) int {
	last := 0
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	return last
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCrossBuild(t *testing.T) {
	b, err := parseDockerBuild(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run("linux/"+arch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "pxe-pilot")
			if err := b.build("linux", arch, out); err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != machines[arch] {
				t.Errorf("ELF machine %v, want %v", f.Machine, machines[arch])
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("binary is dynamically linked (%v): it would not run on distroless/static", p.Type)
				}
			}
			for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
				if f.Section(s) != nil {
					t.Errorf("binary has %s: not stripped (-s -w)", s)
				}
			}
			bi, err := buildinfo.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": arch} {
				if settings[k] != v {
					t.Errorf("build setting %s=%q, want %q", k, settings[k], v)
				}
			}
			// -trimpath keeps -ldflags out of the build record, so look for
			// the stamped string itself, and run it where we can.
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(testVersion)) {
				t.Errorf("binary does not contain the version %q: -X main.version did not take", testVersion)
			}
			if arch == runtime.GOARCH {
				v, err := exec.Command(out, "version").CombinedOutput()
				if err != nil || !strings.Contains(string(v), testVersion) {
					t.Errorf("%s version: %v %q, want %q", out, err, v, testVersion)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The running appliance

type appliance struct {
	url      string
	port     int
	tftpAddr string
	cmd      *exec.Cmd
	done     <-chan error
	logs     *proctest.Buffer
}

const adminKey = "deploy-test-key"

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startAppliance runs the built binary on 127.0.0.1, TFTP on a free loopback
// port, ProxyDHCP off (it needs a broadcast interface of its own), and waits
// until /health answers.
func startAppliance(t *testing.T) *appliance {
	t.Helper()
	port := proctest.FreeTCPPort(t)
	a := &appliance{
		port:     port,
		url:      fmt.Sprintf("http://127.0.0.1:%d", port),
		tftpAddr: fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)),
	}
	a.cmd = exec.Command(applianceBin, "serve")
	a.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"PORT=" + strconv.Itoa(port),
		"PXE_LISTEN_ADDR=127.0.0.1",
		"PXE_BASE_URL=" + a.url,
		"DATABASE_PATH=" + filepath.Join(t.TempDir(), "pxe.db"),
		"ADMIN_API_KEY=" + adminKey,
		"PXE_UBUNTU_KERNEL_URL=http://127.0.0.1:1/vmlinuz",
		"PXE_UBUNTU_INITRD_URL=http://127.0.0.1:1/initrd",
		"PXE_AUTOINSTALL_URL=http://127.0.0.1:1/autoinstall/",
		"PXE_TFTP_ENABLED=true",
		"PXE_TFTP_ADDR=" + a.tftpAddr,
		"PXE_DHCP_PROXY_ENABLED=false",
	}
	a.done, a.logs = proctest.Start(t, a.cmd)
	if err := waitHealthy(a.url, a.done); err != nil {
		t.Fatalf("appliance did not become healthy: %v\nlogs:\n%s", err, a.logs)
	}
	return a
}

// waitHealthy polls /health: at most 300 tries, at most 30 s.
func waitHealthy(url string, done <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		select {
		case err := <-done:
			return fmt.Errorf("process exited: %v", err)
		default:
		}
		resp, err := client.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /health: %s", resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("gave up: %v", last)
}

// stop sends SIGTERM and requires a clean exit (status 0).
func (a *appliance) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("appliance exit after SIGTERM: %v\nlogs:\n%s", err, a.logs)
		}
	case <-time.After(60 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		t.Fatalf("appliance ignored SIGTERM for 60 s\nlogs:\n%s", a.logs)
	}
}

func (a *appliance) do(t *testing.T, method, path string, auth bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+adminKey)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// runHealth runs `pxe-pilot health --server URL` with a bounded time.
func runHealth(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, applianceBin, "health", "--server", url)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("pxe-pilot health did not return within 30 s: %s", out)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		t.Fatal(err)
		return -1, ""
	}
}

func TestLiveAppliance(t *testing.T) {
	a := startAppliance(t)

	// Traffic, so that every counter and histogram the dashboard reads has
	// samples: two machines, one BIOS and one UEFI, one reinstall.
	const mac1, mac2 = "52:54:00:de:91:01", "52:54:00:de:91:02"
	for _, r := range []struct {
		method, path string
		auth         bool
	}{
		{"GET", "/chain", false},
		{"GET", "/boot?mac=" + mac1 + "&ip=203.0.113.21&platform=pcbios&buildarch=i386", false},
		{"GET", "/boot?mac=" + mac2 + "&ip=203.0.113.22&platform=efi&buildarch=x86_64", false},
		{"POST", "/nodes/" + mac2 + "/reinstall", true},
		{"GET", "/boot?mac=" + mac2 + "&ip=203.0.113.22&platform=efi&buildarch=x86_64", false},
		{"POST", "/installed?mac=" + mac2, false},
		{"GET", "/boot?mac=not-a-mac", false},
		{"GET", "/nodes", true},
		{"GET", "/nodes", false},
		{"GET", "/nodes/" + mac1 + "/events", true},
		{"GET", "/ipxe/undionly.kpxe", false},
		{"GET", "/ipxe/no-such-file", false},
		{"GET", "/health", false},
	} {
		code, body := a.do(t, r.method, r.path, r.auth)
		t.Logf("%s %s -> %d (%d bytes)", r.method, r.path, code, len(body))
		if code >= 500 {
			t.Errorf("%s %s -> %d: %s", r.method, r.path, code, body)
		}
	}

	// TFTP with Debian's curl as the client: a full read, the same client
	// again (router-only loop breaking), and a name that does not exist.
	curl := lookPath(t, "curl", "curl")
	for _, name := range []string{"undionly.kpxe", "undionly.kpxe", "ipxe.efi", "no-such-file"} {
		out, err := exec.Command(curl, "-sS", "--max-time", "30", "-o", os.DevNull, "tftp://"+a.tftpAddr+"/"+name).CombinedOutput()
		t.Logf("TFTP %s: err=%v %s", name, err, bytes.TrimSpace(out))
		if (err != nil) != (name == "no-such-file") {
			t.Errorf("TFTP read of %s: %v %s", name, err, out)
		}
	}

	code, metricsText := a.do(t, "GET", "/metrics", false)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	families := parseMetrics(t, metricsText)

	// ProxyDHCP needs an interface with broadcast of its own: a second
	// appliance runs in a network namespace, answering busybox's udhcpc.
	// Its DHCP series join the ones above for the dashboard checks.
	dhcpFams := dhcpApplianceMetrics(t)
	for _, name := range []string{"pxe_pilot_dhcp_offers_total", "pxe_pilot_dhcp_ignored_total", "pxe_pilot_dhcp_reply_duration_seconds"} {
		if sumFamily(dhcpFams[name]) == 0 {
			t.Errorf("%s is zero after a PXE and a plain DHCPDISCOVER", name)
		}
		families[name] = dhcpFams[name]
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		promtool := lookPath(t, "promtool", "prometheus")
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(metricsText)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("traffic was counted", func(t *testing.T) {
		if n := sumFamily(families["pxe_pilot_boot_requests_total"]); n < 3 {
			t.Errorf("pxe_pilot_boot_requests_total sums to %v after 4 /boot requests", n)
		}
		h := families["pxe_pilot_http_request_duration_seconds"]
		if h == nil || h.GetType() != dto.MetricType_HISTOGRAM || sumFamily(h) < 10 {
			t.Errorf("pxe_pilot_http_request_duration_seconds has no samples: %v", h)
		}
	})

	t.Run("build info carries the stamped version", func(t *testing.T) {
		bi := families["pxe_pilot_build_info"]
		if bi == nil || len(bi.Metric) != 1 {
			t.Fatalf("pxe_pilot_build_info: %v", bi)
		}
		for _, l := range bi.Metric[0].Label {
			if l.GetName() == "version" && l.GetValue() != testVersion {
				t.Errorf("build_info version=%q, want %q (-X main.version did not take)", l.GetValue(), testVersion)
			}
		}
	})

	t.Run("dashboard queries live metrics", func(t *testing.T) {
		exprs := dashboardExprs(t)
		checkNames(t, "deploy/grafana/pxe-pilot.json", exprs, families)
		for _, want := range []string{
			"pxe_pilot_boot_requests_total", "pxe_pilot_nodes", "pxe_pilot_dhcp_offers_total",
			"pxe_pilot_dhcp_ignored_total", "pxe_pilot_tftp_transfers_total", "pxe_pilot_tftp_sent_bytes_total",
			"pxe_pilot_http_request_duration_seconds_bucket", "pxe_pilot_build_info",
		} {
			if !slices.ContainsFunc(exprs, func(e string) bool { return slices.Contains(metricNames(e), want) }) {
				t.Errorf("dashboard has no panel querying %s", want)
			}
		}
		// Every expression must be valid PromQL: promtool parses them as
		// recording rules (Grafana's $variables replaced by values).
		checkPromQL(t, exprs)
	})

	t.Run("alert rules query live metrics", func(t *testing.T) {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Expr string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		readYAML(t, "prometheus/alerts.yml", &rules)
		var exprs []string
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				exprs = append(exprs, r.Expr)
			}
		}
		if len(exprs) == 0 {
			t.Fatal("alerts.yml has no rules")
		}
		checkNames(t, "deploy/prometheus/alerts.yml", exprs, families)
	})

	t.Run("health subcommand", func(t *testing.T) {
		if code, out := runHealth(t, a.url); code != 0 {
			t.Errorf("pxe-pilot health against the running appliance: exit %d\n%s", code, out)
		}
	})

	a.stop(t)

	if code, out := runHealth(t, a.url); code == 0 {
		t.Errorf("pxe-pilot health against a stopped appliance: exit 0\n%s", out)
	}
}

func lookPath(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %q (apt-get install %s)", tool, pkg, pkg)
	}
	return p
}

func parseMetrics(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

func sumFamily(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	var n float64
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			n += m.Counter.GetValue()
		case m.Gauge != nil:
			n += m.Gauge.GetValue()
		case m.Histogram != nil:
			n += float64(m.Histogram.GetSampleCount())
		}
	}
	return n
}

// Metric names a query reads: ours, the Go runtime's and the process's.
var metricName = regexp.MustCompile(`\b(pxe_pilot_[a-zA-Z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+)\b`)

func metricNames(expr string) []string {
	var names []string
	for _, m := range metricName.FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1])
	}
	return names
}

// checkNames requires every metric name in exprs to be a live series: a
// family by that name, or the _bucket/_sum/_count series of a live histogram
// (_sum/_count also of a summary).
func checkNames(t *testing.T, file string, exprs []string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	seen := 0
	for _, e := range exprs {
		for _, n := range metricNames(e) {
			seen++
			if fams[n] != nil {
				continue
			}
			ok := false
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				base, cut := strings.CutSuffix(n, suf)
				if !cut || fams[base] == nil {
					continue
				}
				typ := fams[base].GetType()
				ok = typ == dto.MetricType_HISTOGRAM || (suf != "_bucket" && typ == dto.MetricType_SUMMARY)
			}
			if !ok {
				t.Errorf("%s queries %s, which the running appliance does not export (in %q)", file, n, e)
			}
		}
	}
	if seen == 0 {
		t.Errorf("%s: no metric names found in %d expressions", file, len(exprs))
	}
	// Labels aggregated by must exist on the series the expression reads,
	// or the panel silently shows one unlabelled line.
	for _, e := range exprs {
		have := map[string]bool{"instance": true, "job": true, "le": true}
		for _, n := range metricNames(e) {
			for _, f := range []string{n, strings.TrimSuffix(n, "_bucket"), strings.TrimSuffix(n, "_count"), strings.TrimSuffix(n, "_sum")} {
				if fams[f] == nil {
					continue
				}
				for _, m := range fams[f].Metric {
					for _, l := range m.Label {
						have[l.GetName()] = true
					}
				}
			}
		}
		for _, m := range byClause.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !have[l] {
					t.Errorf("%s aggregates by %q, a label none of its series has (in %q)", file, l, e)
				}
			}
		}
	}
}

var byClause = regexp.MustCompile(`\bby \(([^)]*)\)`)

// dashboardExprs returns every PromQL expression in the dashboard: panel
// targets (rows included) and template variable queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("grafana/pxe-pilot.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/pxe-pilot.json: %v", err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("dashboard __inputs = %+v, want one prometheus datasource DS_PROMETHEUS", d.Inputs)
	}
	type panel struct {
		Title      string          `json:"title"`
		Type       string          `json:"type"`
		Datasource json.RawMessage `json:"datasource"`
		Targets    []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("dashboard panel: %v", err)
			}
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no queries", p.Title)
				}
				if !bytes.Contains(p.Datasource, []byte("${DS_PROMETHEUS}")) {
					t.Errorf("panel %q datasource %s is not ${DS_PROMETHEUS}", p.Title, p.Datasource)
				}
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &s) == nil {
			q.Query = s
		} else if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("template variable %q: %v", v.Name, err)
		}
		// label_values(<selector>, label): the selector is PromQL.
		if m := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`).FindStringSubmatch(q.Query); m != nil {
			exprs = append(exprs, m[1])
		} else {
			t.Errorf("template variable %q: unexpected query %q", v.Name, q.Query)
		}
	}
	if len(exprs) < 10 {
		t.Errorf("dashboard has only %d queries", len(exprs))
	}
	return exprs
}

// checkPromQL has promtool parse each expression, written as a recording rule.
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	promtool := lookPath(t, "promtool", "prometheus")
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h", "$job", ".*", "$instance", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:expr%d", i), Expr: vars.Replace(e)})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("dashboard PromQL does not parse: %v\n%s", err, res)
	}
}

// netnsProcess runs `sh -c script` (which must end in exec) in a new network
// namespace and returns once the process has entered it, so nsenter cannot
// land in the host's namespace.
func netnsProcess(t *testing.T, script string, env []string, args ...string) (*exec.Cmd, <-chan error, *proctest.Buffer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it creates a network namespace); CI runs as root")
	}
	unshare := lookPath(t, "unshare", "util-linux")
	lookPath(t, "ip", "iproute2")
	cmd := exec.Command(unshare, append([]string{"--net", "--", "sh", "-c", script}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	done, logs := proctest.Start(t, cmd)
	self := must(os.Readlink("/proc/self/ns/net"))
	for i := 0; ; i++ {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if err == nil && ns != self {
			break
		}
		if i == 500 {
			t.Fatalf("process %d never entered a new network namespace; logs:\n%s", cmd.Process.Pid, logs)
		}
		select {
		case err := <-done:
			t.Fatalf("exited early: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return cmd, done, logs
}

// inNetns builds a command that runs in the network namespace of pid.
func inNetns(t *testing.T, pid int, args ...string) *exec.Cmd {
	t.Helper()
	nsenter := lookPath(t, "nsenter", "util-linux")
	c := exec.Command(nsenter, append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}, args...)...)
	c.Env = []string{"PATH=" + os.Getenv("PATH")}
	return c
}

// waitHealthyIn polls `pxe-pilot health` inside the namespace: at most 100
// tries, at most 60 s.
func waitHealthyIn(t *testing.T, pid int, url string, done <-chan error, logs *proctest.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 100 && time.Now().Before(deadline); i++ {
		select {
		case err := <-done:
			t.Fatalf("appliance exited: %v\nlogs:\n%s", err, logs)
		default:
		}
		if inNetns(t, pid, applianceBin, "health", "--server", url, "--timeout", "2s").Run() == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("appliance never healthy at %s; logs:\n%s", url, logs)
}

// dhcpApplianceMetrics runs the appliance with ProxyDHCP on one end of a veth
// pair (198.51.100.1/24) inside a namespace this test creates, sends a PXE
// DHCPDISCOVER (option 60 PXEClient, option 93 arch 0) and a plain one from
// the other end with busybox udhcpc, and returns the appliance's /metrics.
func dhcpApplianceMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	busybox := lookPath(t, "busybox", "busybox")
	curl := lookPath(t, "curl", "curl")
	const url = "http://127.0.0.1:8000"
	cmd, done, logs := netnsProcess(t,
		`ip link set lo up && ip link add pxa type veth peer name pxb && ip addr add 198.51.100.1/24 dev pxa && ip link set pxa up && ip link set pxb up && exec "$0" serve`,
		[]string{
			"PORT=8000",
			"PXE_LISTEN_ADDR=127.0.0.1",
			"PXE_BASE_URL=http://198.51.100.1:8000",
			"DATABASE_PATH=" + filepath.Join(t.TempDir(), "pxe.db"),
			"PXE_TFTP_ENABLED=false",
			"PXE_DHCP_PROXY_ENABLED=true",
			"PXE_DHCP_INTERFACE=pxa",
		}, applianceBin)
	pid := cmd.Process.Pid
	waitHealthyIn(t, pid, url, done, logs)
	for _, extra := range [][]string{
		{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"}, // BIOS PXE ROM
		{"-V", "not-a-pxe-client"},                                    // an ordinary client
	} {
		// -n: give up without a lease (the proxy never gives one); -s: no
		// script, the interface stays as it is. 2 DISCOVERs, 1 s apart.
		args := append([]string{busybox, "udhcpc", "-i", "pxb", "-n", "-q", "-t", "2", "-T", "1", "-A", "1", "-s", "/bin/true"}, extra...)
		c := inNetns(t, pid, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c2 := exec.CommandContext(ctx, c.Path, c.Args[1:]...)
		c2.Env = c.Env
		out, _ := c2.CombinedOutput() // exits 1: no lease, as expected
		cancel()
		t.Logf("udhcpc %v:\n%s", extra, out)
	}
	out, err := inNetns(t, pid, curl, "-sS", "--max-time", "10", url+"/metrics").Output()
	if err != nil {
		t.Fatalf("GET /metrics in the namespace: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("DHCP appliance exit after SIGTERM: %v\nlogs:\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("DHCP appliance ignored SIGTERM for 60 s\nlogs:\n%s", logs)
	}
	t.Logf("DHCP appliance logs:\n%s", logs)
	return parseMetrics(t, out)
}

// ---------------------------------------------------------------------------
// Non-root with file capabilities (the image's privilege model)

// dockerCaps returns the capabilities the Dockerfile's setcap grants, e.g.
// ["net_bind_service", "net_raw"], and the full setcap text.
func dockerCaps(t *testing.T) ([]string, string) {
	t.Helper()
	ins, err := readDockerfile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`setcap (cap_[a-z_,]+)=\+ep /out/pxe-pilot`)
	for _, in := range ins {
		if m := re.FindStringSubmatch(in.args); m != nil && in.cmd == "RUN" {
			var caps []string
			for _, c := range strings.Split(m[1], ",") {
				caps = append(caps, strings.TrimPrefix(c, "cap_"))
			}
			sort.Strings(caps)
			return caps, m[1] + "=+ep"
		}
	}
	t.Fatal("Dockerfile: no `RUN setcap cap_...=+ep /out/pxe-pilot`")
	return nil, ""
}

func TestNonRootWithFileCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it sets file capabilities, switches user and creates a network namespace); CI runs as root")
	}
	caps, setcapArg := dockerCaps(t)
	if !slices.Equal(caps, []string{"net_bind_service", "net_raw"}) {
		t.Errorf("Dockerfile file capabilities %v, want exactly net_bind_service and net_raw (see the Dockerfile's comment)", caps)
	}
	setcap := lookPath(t, "setcap", "libcap2-bin")
	setpriv := lookPath(t, "setpriv", "util-linux")
	unshare := lookPath(t, "unshare", "util-linux")
	nsenter := lookPath(t, "nsenter", "util-linux")
	lookPath(t, "ip", "iproute2")
	curl := lookPath(t, "curl", "curl")

	// The image's user, and its /data owned by it.
	ins, _ := readDockerfile(filepath.Join(repo, "Dockerfile"))
	var user string
	for _, in := range ins[lastFrom(ins):] {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	uid, gid, ok := strings.Cut(user, ":")
	if !ok {
		t.Fatalf("Dockerfile USER %q: want numeric uid:gid", user)
	}
	uidN, _ := strconv.Atoi(uid)
	gidN, _ := strconv.Atoi(gid)
	if uidN == 0 {
		t.Fatalf("Dockerfile USER %q is root", user)
	}

	dir, err := os.MkdirTemp("", "pxe-pilot-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uidN, gidN); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "pxe-pilot-plain")
	capped := filepath.Join(dir, "pxe-pilot")
	for _, p := range []string{plain, capped} {
		if err := copyFile(applianceBin, p); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(setcap, setcapArg, capped).CombinedOutput(); err != nil {
		t.Fatalf("setcap %s: %v\n%s", setcapArg, err, out)
	}

	// run starts bin as the image's user, in a fresh network namespace, with
	// the bounding set `docker run --cap-drop ALL --cap-add ...` gives.
	run := func(t *testing.T, bin string, bounding []string) (*exec.Cmd, <-chan error, *proctest.Buffer) {
		bset := "-all"
		for _, c := range bounding {
			bset += ",+" + c
		}
		cmd := exec.Command(unshare, "--net", "--", "sh", "-c",
			`ip link set lo up && ip link add pxa type veth peer name pxb && ip addr add 198.51.100.1/24 dev pxa && ip link set pxa up && ip link set pxb up && `+
				`exec "$0" --reuid="$1" --regid="$2" --clear-groups --inh-caps=-all --bounding-set="$3" -- "$4" serve`,
			setpriv, uid, gid, bset, bin)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"PORT=80",
			"PXE_LISTEN_ADDR=127.0.0.1",
			"PXE_BASE_URL=http://198.51.100.1:80",
			"DATABASE_PATH=" + filepath.Join(data, "pxe.db"),
			"PXE_TFTP_ENABLED=true",
			"PXE_TFTP_ADDR=127.0.0.1:69",
			"PXE_DHCP_PROXY_ENABLED=true", // UDP 67 and 4011, SO_BINDTODEVICE
			"PXE_DHCP_INTERFACE=pxa",
		}
		done, logs := proctest.Start(t, cmd)
		return cmd, done, logs
	}
	waitExit := func(t *testing.T, done <-chan error, logs *proctest.Buffer) error {
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatalf("process still running after 60 s; logs:\n%s", logs)
			return nil
		}
	}

	t.Run("with the image's capabilities it binds TCP 80, UDP 69, 67 and 4011", func(t *testing.T) {
		cmd, done, logs := run(t, capped, caps)
		pid := cmd.Process.Pid
		// Wait until unshare has moved the process into its own namespace,
		// so nsenter cannot land in the host's.
		self := must(os.Readlink("/proc/self/ns/net"))
		for i := 0; ; i++ {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err == nil && ns != self {
				break
			}
			if i == 500 {
				t.Fatalf("process %d never entered a new network namespace; logs:\n%s", pid, logs)
			}
			select {
			case err := <-done:
				t.Fatalf("exited early: %v\n%s", err, logs)
			case <-time.After(20 * time.Millisecond):
			}
		}
		inNS := func(args ...string) *exec.Cmd {
			c := exec.Command(nsenter, append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}, args...)...)
			c.Env = []string{"PATH=" + os.Getenv("PATH")}
			return c
		}
		healthy := false
		for i := 0; i < 100 && !healthy; i++ {
			select {
			case err := <-done:
				t.Fatalf("appliance exited: %v\nlogs:\n%s", err, logs)
			default:
			}
			healthy = inNS(applianceBin, "health", "--server", "http://127.0.0.1:80", "--timeout", "2s").Run() == nil
			if !healthy {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !healthy {
			t.Fatalf("never healthy on port 80; logs:\n%s", logs)
		}
		// ProxyDHCP's sockets, as the kernel lists them in the namespace.
		ssOut, err := inNS("ss", "-Hlun").CombinedOutput()
		if err != nil {
			t.Fatalf("ss -Hlun: %v\n%s", err, ssOut)
		}
		for _, port := range []string{":67 ", ":4011 ", ":69 "} {
			if !strings.Contains(string(ssOut), port) {
				t.Errorf("nothing listens on UDP %s as %s:\n%s\nlogs:\n%s", strings.TrimSpace(port), user, ssOut, logs)
			}
		}
		// A real TFTP read on port 69, compared with the file on disk.
		got := filepath.Join(t.TempDir(), "undionly.kpxe")
		if out, err := inNS(curl, "-sS", "--max-time", "30", "-o", got, "tftp://127.0.0.1:69/undionly.kpxe").CombinedOutput(); err != nil {
			t.Fatalf("TFTP read as %s on port 69: %v\n%s\nlogs:\n%s", user, err, out, logs)
		}
		want, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
		if err != nil {
			t.Fatalf("%v (install Debian's ipxe package)", err)
		}
		if !bytes.Equal(must(os.ReadFile(got)), want) {
			t.Errorf("TFTP undionly.kpxe differs from /usr/lib/ipxe/undionly.kpxe")
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(st, []byte(fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uidN, uidN, uidN, uidN))) {
			t.Errorf("appliance does not run as uid %d:\n%s", uidN, st)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := waitExit(t, done, logs); err != nil {
			t.Errorf("exit after SIGTERM: %v\nlogs:\n%s", err, logs)
		}
	})

	t.Run("without file capabilities the non-root user cannot bind its ports", func(t *testing.T) {
		_, done, logs := run(t, plain, caps)
		if err := waitExit(t, done, logs); err == nil {
			t.Errorf("appliance without file capabilities exited 0; logs:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "permission denied") {
			t.Errorf("expected a 'permission denied' bind error; logs:\n%s", logs)
		}
	})

	t.Run("a bounding set without NET_RAW refuses to exec the binary", func(t *testing.T) {
		_, done, logs := run(t, capped, []string{"net_bind_service"})
		if err := waitExit(t, done, logs); err == nil {
			t.Errorf("exec succeeded; the Dockerfile's comment says it must not; logs:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "Operation not permitted") {
			t.Errorf("expected exec to fail with EPERM; logs:\n%s", logs)
		}
	})
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

// ---------------------------------------------------------------------------
// systemd

func TestSystemdUnit(t *testing.T) {
	sa := lookPath(t, "systemd-analyze", "systemd")
	unitData, err := os.ReadFile("systemd/pxe-pilot.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(unitData)

	// systemd-analyze verify insists the ExecStart binary exists; verify a
	// copy whose ExecStart is the binary this test built (the unit's own
	// path, /usr/local/bin/pxe-pilot, is checked by text below).
	re := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/pxe-pilot serve$`)
	if !re.MatchString(unit) {
		t.Fatalf("unit: want ExecStart=/usr/local/bin/pxe-pilot serve")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "pxe-pilot.service")
	if err := os.WriteFile(path, []byte(re.ReplaceAllString(unit, "ExecStart="+applianceBin+" serve")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on unknown keys and unparsable values (it only warns),
	// so any line about our unit is a failure too.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "pxe-pilot.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}

	directives := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(unitData))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for k, v := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "pxe-pilot",
		"EnvironmentFile":         "-/etc/pxe-pilot/env",
		"Environment":             "DATABASE_PATH=/var/lib/pxe-pilot/pxe.db",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
	} {
		if !slices.Contains(directives[k], v) {
			t.Errorf("unit %s=%q, want %q", k, directives[k], v)
		}
	}
	// The same two capabilities as the image, ambient (a non-root process
	// keeps them across exec) and as the whole bounding set.
	caps, _ := dockerCaps(t)
	var want []string
	for _, c := range caps {
		want = append(want, "CAP_"+strings.ToUpper(c))
	}
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		got := strings.Fields(strings.Join(directives[k], " "))
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("unit %s=%v, want %v (the Dockerfile's setcap)", k, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Configuration documented everywhere

var envName = regexp.MustCompile(`^(PXE_[A-Z0-9_]+|DATABASE_PATH|PORT|ADMIN_API_KEY)$`)

// envVarsInCode scans every non-test .go file of the repository for string
// literals that are environment variable names.
func envVarsInCode(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{} // name -> first file:line
	fset := token.NewFileSet()
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != repo && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && envName.MatchString(s) {
				if _, dup := found[s]; !dup {
					found[s] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 10 {
		t.Fatalf("found only %d environment variable names in the code (%v): the scan is broken", len(found), found)
	}
	return found
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type composeFile struct {
	Services map[string]struct {
		NetworkMode     string         `yaml:"network_mode"`
		Environment     map[string]any `yaml:"environment"`
		Volumes         []string       `yaml:"volumes"`
		CapAdd          []string       `yaml:"cap_add"`
		CapDrop         []string       `yaml:"cap_drop"`
		StopGracePeriod string         `yaml:"stop_grace_period"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeFile(t *testing.T) {
	var c composeFile
	readYAML(t, filepath.Join(repo, "docker-compose.example.yml"), &c)
	svc, ok := c.Services["pxe-pilot"]
	if !ok || len(c.Services) != 1 {
		t.Fatalf("compose services %v: want exactly one, pxe-pilot", c.Services)
	}
	if svc.NetworkMode != "host" {
		t.Errorf("network_mode %q: ProxyDHCP needs host (broadcasts do not cross Docker's NAT)", svc.NetworkMode)
	}
	if _, ok := c.Volumes["pxe-data"]; !ok {
		t.Errorf("no top-level pxe-data volume")
	}
	if !slices.Contains(svc.Volumes, "pxe-data:/data") {
		t.Errorf("volumes %v: want pxe-data:/data (the image's VOLUME)", svc.Volumes)
	}
	if db, _ := svc.Environment["DATABASE_PATH"].(string); !strings.HasPrefix(db, "/data/") {
		t.Errorf("DATABASE_PATH=%q is not inside the /data volume: the database would die with the container", db)
	}
	for k, v := range svc.Environment {
		if _, ok := v.(string); !ok {
			t.Errorf("environment %s: value %v (%T) must be a quoted string", k, v, v)
		}
	}
	caps, _ := dockerCaps(t)
	var want []string
	for _, cp := range caps {
		want = append(want, strings.ToUpper(cp))
	}
	got := slices.Clone(svc.CapAdd)
	sort.Strings(got)
	if !slices.Equal(got, want) || !slices.Equal(svc.CapDrop, []string{"ALL"}) {
		t.Errorf("cap_drop %v cap_add %v: want [ALL] and %v (the binary's file capabilities; a missing one makes exec fail)", svc.CapDrop, svc.CapAdd, want)
	}
	grace, err1 := time.ParseDuration(svc.StopGracePeriod)
	shutdown, err2 := time.ParseDuration(fmt.Sprint(svc.Environment["PXE_SHUTDOWN_TIMEOUT"]))
	if err1 != nil || err2 != nil || grace <= shutdown {
		t.Errorf("stop_grace_period %q must exceed PXE_SHUTDOWN_TIMEOUT %v, or Docker kills the appliance before the database is closed", svc.StopGracePeriod, svc.Environment["PXE_SHUTDOWN_TIMEOUT"])
	}
}

func TestEveryEnvVarDocumented(t *testing.T) {
	code := envVarsInCode(t)
	names := make([]string, 0, len(code))
	for n := range code {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d variables read by the code: %v", len(names), names)

	t.Run("compose", func(t *testing.T) {
		var c composeFile
		readYAML(t, filepath.Join(repo, "docker-compose.example.yml"), &c)
		env := c.Services["pxe-pilot"].Environment
		for _, n := range names {
			if _, ok := env[n]; !ok {
				t.Errorf("docker-compose.example.yml lacks %s (read at %s)", n, code[n])
			}
		}
		for n := range env {
			if _, ok := code[n]; !ok {
				t.Errorf("docker-compose.example.yml sets %s, which no code reads", n)
			}
		}
	})

	t.Run("systemd env example", func(t *testing.T) {
		data, err := os.ReadFile("systemd/pxe-pilot.env")
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimPrefix(strings.TrimSpace(l), "# ")
			if k, _, ok := strings.Cut(l, "="); ok && envName.MatchString(k) {
				listed[k] = true
			}
		}
		for _, n := range names {
			if !listed[n] {
				t.Errorf("deploy/systemd/pxe-pilot.env lacks %s (read at %s)", n, code[n])
			}
		}
		for n := range listed {
			if _, ok := code[n]; !ok {
				t.Errorf("deploy/systemd/pxe-pilot.env lists %s, which no code reads", n)
			}
		}
	})

	t.Run("README configuration table", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(repo, "README.md"))
		if err != nil {
			t.Fatalf("README.md: %v (the README's configuration table must list every variable)", err)
		}
		inTable := map[string]bool{}
		word := regexp.MustCompile(`\b(PXE_[A-Z0-9_]+|DATABASE_PATH|PORT|ADMIN_API_KEY)\b`)
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "|") {
				continue
			}
			for _, m := range word.FindAllString(l, -1) {
				inTable[m] = true
			}
		}
		for _, n := range names {
			if !inTable[n] {
				t.Errorf("README.md: no table row names %s (read at %s)", n, code[n])
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Prometheus files

func TestPrometheusFiles(t *testing.T) {
	promtool := lookPath(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"}, // also checks alerts.yml, its rule file
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestNoMergeConflictMarkers: no committed text file keeps a merge's
// conflict markers (README.md once did, in two places).
func TestNoMergeConflictMarkers(t *testing.T) {
	skip := map[string]bool{".git": true, "node_modules": true, "artifacts": true, "testdata": true}
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skip[d.Name()] || path != repo && strings.HasPrefix(d.Name(), ".") && d.Name() != ".ci" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yml", ".yaml", ".sh", ".env", ".tmpl", ".service", ".lua", "":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range []string{"<<<<<<< ", ">>>>>>> ", "======="} {
				if strings.HasPrefix(line, m) && (m != "=======" || strings.TrimRight(line, " ") == m) {
					t.Errorf("%s:%d: merge conflict marker %q", path, i+1, line)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
