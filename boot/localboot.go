package boot

import (
	"fmt"
	"strconv"
	"strings"
)

// ValidateLocalBootScript checks a per-node local-boot command. Only "exit"
// (with an optional status 0-255) and "sanboot" with whitelisted options are
// accepted, one command on one line, so the admin API cannot be used to make
// a machine run arbitrary iPXE commands (chain to a foreign server, change
// settings, …). It returns the command with white space normalised.
func ValidateLocalBootScript(script string) (string, error) {
	if len(script) > 512 {
		return "", fmt.Errorf("script is %d bytes; at most 512 are allowed", len(script))
	}
	if strings.ContainsAny(script, "\r\n") {
		return "", fmt.Errorf("script must be a single command on one line")
	}
	f := strings.Fields(script)
	if len(f) == 0 {
		return "", fmt.Errorf("script is empty (use DELETE to restore the default)")
	}
	switch f[0] {
	case "exit":
		if len(f) > 2 {
			return "", fmt.Errorf("exit takes at most one status, got %q", strings.Join(f[1:], " "))
		}
		if len(f) == 2 {
			if n, err := strconv.ParseUint(f[1], 10, 8); err != nil || n > 255 {
				return "", fmt.Errorf("exit status %q is not a number from 0 to 255", f[1])
			}
		}
	case "sanboot":
		if err := validateSanboot(f[1:]); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("command %q is not allowed; use exit or sanboot", f[0])
	}
	return strings.Join(f, " "), nil
}

func validateSanboot(args []string) error {
	for i := 0; i < len(args); i++ {
		opt, val, hasVal := strings.Cut(args[i], "=")
		needsValue := false
		switch opt {
		case "--no-describe", "--keep":
			if hasVal {
				return fmt.Errorf("sanboot option %s takes no value", opt)
			}
			continue
		case "--drive", "--filename", "--extra", "--label", "--uuid":
			needsValue = true
		default:
			return fmt.Errorf("sanboot option %q is not allowed (allowed: --no-describe, --keep, --drive, --filename, --extra, --label, --uuid)", args[i])
		}
		if needsValue && !hasVal {
			if i+1 >= len(args) {
				return fmt.Errorf("sanboot option %s needs a value", opt)
			}
			i++
			val = args[i]
		}
		if opt == "--drive" {
			// iPXE reads the number with strtoul(…, 0): decimal, 0x hex or
			// 0 octal. Go's base 0 also takes "_" separators and 0b/0o
			// prefixes, which iPXE would refuse at boot time.
			lower := strings.ToLower(val)
			if _, err := strconv.ParseUint(val, 0, 8); err != nil || strings.Contains(val, "_") ||
				strings.HasPrefix(lower, "0b") || strings.HasPrefix(lower, "0o") {
				return fmt.Errorf("sanboot --drive %q is not a drive number such as 0x80", val)
			}
			continue
		}
		if val == "" || !safeValue(val) {
			return fmt.Errorf("sanboot %s value %q has characters that are not allowed (letters, digits and . _ - / \\ : only)", opt, val)
		}
	}
	return nil
}

// safeValue refuses everything iPXE's parser gives a meaning to: "$" and
// "{" (setting expansion), quotes, "|" and "&" (|| and &&), "#" (comment).
func safeValue(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._-/\\:", r):
		default:
			return false
		}
	}
	return true
}
