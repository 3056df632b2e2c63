package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// grubLinuxMod is Debian's GRUB module with grub_create_loader_cmdline,
// the function that turns the linux command's arguments into the kernel's
// command line (package grub-efi-amd64-bin).
const grubLinuxMod = "/usr/lib/grub/x86_64-efi/linux.mod"

// grubCmdline builds a small program around Debian's compiled linux.mod and
// returns a function that runs GRUB's own grub_create_loader_cmdline on a
// list of arguments: what the kernel gets from "linux <kernel> <args>".
func grubCmdline(t *testing.T) func(args []string) string {
	t.Helper()
	if _, err := os.Stat(grubLinuxMod); err != nil {
		t.Fatalf("%v: install grub-efi-amd64-bin (Debian's GRUB modules; .ci/deps.sh does)", err)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc is missing (apt-get install gcc): %v", err)
	}
	dir := t.TempDir()
	const src = `#include <stdio.h>
extern int grub_create_loader_cmdline(int argc, char *argv[], char *buf, unsigned long size, int type);
extern unsigned int grub_loader_cmdline_size(int argc, char *argv[]);
int grub_verify_string(char *s, int type) { return 0; }
int main(int argc, char **argv) {
	static char buf[65536];
	if (grub_loader_cmdline_size(argc - 1, argv + 1) > sizeof buf) return 2;
	grub_create_loader_cmdline(argc - 1, argv + 1, buf, sizeof buf, 0);
	fputs(buf, stdout);
	return 0;
}
`
	mod, err := os.ReadFile(grubLinuxMod)
	if err != nil {
		t.Fatal(err)
	}
	// gcc takes a ".mod" file for Modula-2: the same ELF object as ".o".
	if err := os.WriteFile(filepath.Join(dir, "linux.o"), mod, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "grubcmdline")
	cmd := exec.Command(gcc, "-no-pie", "-o", bin, "main.c", "linux.o", "-Wl,--unresolved-symbols=ignore-all")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("linking %s: %v\n%s", grubLinuxMod, err, out)
	}
	return func(args []string) string {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("grub_create_loader_cmdline %q: %v", args, err)
		}
		return string(out)
	}
}

// kernelParams parses a command line as the Linux kernel does (next_arg in
// kernel/params.c): each parameter and its value, quotes removed where the
// kernel removes them.
func kernelParams(s string) [][2]string {
	var out [][2]string
	b := []byte(strings.TrimLeft(s, " \t\n"))
	for len(b) > 0 {
		quoted, inQuote := false, false
		if b[0] == '"' {
			b, quoted, inQuote = b[1:], true, true
		}
		i, equals := 0, -1
		for ; i < len(b); i++ {
			if strings.IndexByte(" \t\n", b[i]) >= 0 && !inQuote {
				break
			}
			if equals < 0 && b[i] == '=' {
				equals = i
			}
			if b[i] == '"' {
				inQuote = !inQuote
			}
		}
		arg := append([]byte(nil), b[:i]...)
		end := len(arg)
		if quoted && end > 0 && arg[end-1] == '"' {
			end--
		}
		param, val := string(arg[:end]), ""
		if equals >= 0 {
			param, val = string(arg[:equals]), string(arg[equals+1:])
			if strings.HasPrefix(val, `"`) {
				val = val[1:]
				if i > 0 && b[i-1] == '"' {
					val = strings.TrimSuffix(val, `"`)
				}
			} else if quoted {
				val = strings.TrimSuffix(val, `"`)
			}
		}
		out = append(out, [2]string{param, val})
		b = []byte(strings.TrimLeft(string(b[i:]), " \t\n"))
	}
	return out
}

// grubLineWords reads back the words of one rendered line: bare words and
// single-quoted ones, a quote written '\” (all that GRUB renders).
func grubLineWords(line string) []string {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestGRUBPassesTheKernelWhatIPXEPasses: the kernel gets the same
// parameters from the GRUB script as from the iPXE one, checked with
// GRUB's own code. GRUB quotes an argument with a space and escapes every
// quote and backslash, so the command line was once passed word by word
// and preseed/late_command="in-target …" reached d-i as \"in-target and
// "ds=…" as \"ds=…\", which cloud-init does not know.
func TestGRUBPassesTheKernelWhatIPXEPasses(t *testing.T) {
	run := grubCmdline(t)
	const mac = store.MAC("52:54:00:12:34:56")
	for _, cmdline := range []string{
		`console=ttyS0 priority=critical`,
		`preseed/late_command="in-target touch /root/done" auto=true`,
		`autoinstall "ds=nocloud-net;s=http://198.51.100.1:8000/install/x/tok/"`,
		`quiet  splash=verbose "x=1 2"   $notavar --- console=tty0`,
	} {
		p := Plan{Decision: store.DecisionReinstall, MAC: mac, Profile: "p", Kind: profiles.KindLinux,
			Kernel: "/grub/node/52:54:00:12:34:56.kernel", Install: true, Cmdline: cmdline}
		if err := GRUBCheck(p); err != nil {
			t.Fatalf("GRUBCheck(%q): %v", cmdline, err)
		}
		script, err := GRUB(p)
		if err != nil {
			t.Fatal(err)
		}
		var linux string
		for _, l := range strings.Split(string(script), "\n") {
			if strings.HasPrefix(l, "linux ") {
				linux = l
			}
		}
		words := grubLineWords(linux)
		got := run(words[2:]) // after "linux" and the kernel
		if a, b := kernelParams(got), kernelParams(cmdline); !reflect.DeepEqual(a, b) {
			t.Errorf("%s\nGRUB gives the kernel %q: %q\niPXE gives it %q: %q", linux, got, a, cmdline, b)
		}
	}
}

func TestKernelParams(t *testing.T) {
	got := kernelParams(`a=1 b="x y" "c=z w" d e="" f`)
	want := [][2]string{{"a", "1"}, {"b", "x y"}, {"c", "z w"}, {"d", ""}, {"e", ""}, {"f", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kernelParams = %q, want %q", got, want)
	}
}
