package store

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Install is one install of a node: what was served, the token its
// call-backs must carry, and how it went.
type Install struct {
	// Profile and Rule: the profile that was served and why.
	Profile string `json:"profile" cbor:"1,keyasint,omitempty"`
	Rule    string `json:"rule,omitempty" cbor:"2,keyasint,omitempty"`
	// Loader that fetched it ("ipxe" or "grub").
	Loader string `json:"loader,omitempty" cbor:"3,keyasint,omitempty"`
	// Token authenticates the installer's call-backs and its config
	// downloads for this install only. It is a secret: the API hides it
	// (Node.Public).
	Token     string     `json:"token,omitempty" cbor:"4,keyasint,omitempty"`
	Started   time.Time  `json:"started" cbor:"5,keyasint,omitempty"`
	LastWord  *time.Time `json:"last_word,omitempty" cbor:"6,keyasint,omitempty"` // last call-back of any kind
	Progress  string     `json:"progress,omitempty" cbor:"7,keyasint,omitempty"`  // the last progress message
	Ended     *time.Time `json:"ended,omitempty" cbor:"8,keyasint,omitempty"`
	Outcome   string     `json:"outcome,omitempty" cbor:"9,keyasint,omitempty"` // "installed" or "failed"
	Reason    string     `json:"reason,omitempty" cbor:"10,keyasint,omitempty"` // why it failed ("stalled", the installer's words)
	Reporter  string     `json:"reporter,omitempty" cbor:"11,keyasint,omitempty"`
	Downloads uint32     `json:"downloads,omitempty" cbor:"12,keyasint,omitempty"` // config files served
	// NoCallbacks marks an install whose installer was never told its
	// token (the seed's default profile points at the user's own
	// autoinstall server): it cannot report, so the stall rule leaves it
	// in installing, as before profiles existed.
	NoCallbacks bool `json:"no_callbacks,omitempty" cbor:"13,keyasint,omitempty"`
}

// Lifecycle errors callers can test with errors.Is.
var (
	// ErrBadToken: a call-back whose token is not this install's.
	ErrBadToken = errors.New("install token is missing, wrong or stale")
	// ErrNotInstalling: a call-back for a node that is not installing.
	ErrNotInstalling = errors.New("node is not installing")
)

// StallReason is the failure reason of an install nobody heard from.
const StallReason = "stalled"

// StartInstall records that the installer is being served: the reinstall
// flag is consumed and a new install with the given token begins. It
// reports false, changing nothing, when the node was not waiting for a
// reinstall.
func (n *Node) StartInstall(now time.Time, profile, rule, loader, token string) bool {
	if n.State != StateReinstall {
		return false
	}
	n.setState(StateInstalling, now)
	n.InstallCount++
	n.Install = &Install{Profile: profile, Rule: rule, Loader: loader, Token: token, Started: now}
	return true
}

// TokenOK reports, in constant time, whether token is the current
// install's. A node with no install never matches.
func (n *Node) TokenOK(token string) bool {
	if n.Install == nil || n.Install.Token == "" || token == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(n.Install.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Report applies an installer call-back. kind is EventProgress,
// EventInstalled or EventFailed. admin is true when the caller proved the
// admin key; otherwise token must be this install's (ErrBadToken). Only an
// installing node takes a call-back (ErrNotInstalling), except that the
// admin may also mark a node in reinstall (installed from elsewhere) or a
// failed one installed. It returns the event to record.
func (n *Node) Report(kind string, admin bool, token, reporter, msg string, now time.Time) (Event, error) {
	if !admin && !n.TokenOK(token) {
		return Event{}, ErrBadToken
	}
	switch {
	case n.State == StateInstalling:
	case admin && kind == EventInstalled && (n.State == StateReinstall || n.State == StateFailed):
		if n.Install == nil {
			n.Install = &Install{Started: now}
		}
	default:
		return Event{}, fmt.Errorf("%w (it is %s)", ErrNotInstalling, n.State)
	}
	in := n.Install
	if in == nil { // installing with no record: a node written by an older version
		in = &Install{Started: n.StateChangedAt}
		n.Install = in
	}
	t := now
	in.LastWord = &t
	in.Reporter = reporter
	switch kind {
	case EventProgress:
		in.Progress = msg
	case EventInstalled:
		in.Outcome, in.Ended, in.Reason = EventInstalled, &t, ""
		n.setState(StateInstalled, now)
	case EventFailed:
		if msg == "" {
			msg = "the installer reported a failure"
		}
		in.Outcome, in.Ended, in.Reason = EventFailed, &t, msg
		n.setState(StateFailed, now)
	default:
		return Event{}, fmt.Errorf("unknown report kind %q", kind)
	}
	return Event{Type: kind, Reason: msg, Profile: in.Profile, State: n.State}, nil
}

// Stalled reports whether an installing node has had no word for timeout
// (counted from the install's start or its last call-back).
func (n *Node) Stalled(now time.Time, timeout time.Duration) bool {
	if n.State != StateInstalling || timeout <= 0 || (n.Install != nil && n.Install.NoCallbacks) {
		return false
	}
	last := n.StateChangedAt
	if n.Install != nil {
		last = n.Install.Started
		if n.Install.LastWord != nil && n.Install.LastWord.After(last) {
			last = *n.Install.LastWord
		}
	}
	return now.Sub(last) >= timeout
}

// Stall moves a stalled install to failed, reason StallReason. It returns
// false, changing nothing, when the node is not stalled.
func (n *Node) Stall(now time.Time, timeout time.Duration) (Event, bool) {
	if !n.Stalled(now, timeout) {
		return Event{}, false
	}
	if n.Install == nil {
		n.Install = &Install{Started: n.StateChangedAt}
	}
	t := now
	n.Install.Outcome, n.Install.Ended, n.Install.Reason = EventFailed, &t, StallReason
	n.setState(StateFailed, now)
	return Event{Type: EventFailed, Reason: fmt.Sprintf("%s: no word from the installer for %s", StallReason, timeout), Profile: n.Install.Profile, State: n.State}, true
}

// Public is the node as the API shows it: the install token left out.
func (n Node) Public() Node {
	if n.Install != nil && n.Install.Token != "" {
		in := *n.Install
		in.Token = ""
		n.Install = &in
	}
	return n
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})?$`)
var labelValueRE = regexp.MustCompile(`^[A-Za-z0-9._:/@+=,-]{0,128}$`)

// ValidateLabel checks a label or variable: a key of 1–63 letters, digits,
// '.', '_' or '-' starting with a letter or digit, and a value of at most
// 128 of those or ":/@+=,". Values end up on kernel command lines and in
// installer configs, so nothing there can break a script or a URL.
func ValidateLabel(k, v string) error {
	if !labelRE.MatchString(k) {
		return fmt.Errorf("key %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", quoteShort(k))
	}
	if !labelValueRE.MatchString(v) {
		return fmt.Errorf("value of %q = %q: use at most 128 letters, digits or . _ - : / @ + = , (no spaces or quotes)", k, quoteShort(v))
	}
	return nil
}

// ValidateHostname checks an RFC 1123 host name (labels of letters, digits
// and '-', dots between, at most 253 characters).
func ValidateHostname(h string) error {
	if h == "" {
		return nil
	}
	if len(h) > 253 || !hostnameRE.MatchString(h) {
		return fmt.Errorf("hostname %q: use letters, digits and '-' in dot-separated parts of at most 63 characters (RFC 1123)", quoteShort(h))
	}
	return nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// DefaultHostname is the name templates get for a node without one.
func (n *Node) DefaultHostname() string {
	if n.Hostname != "" {
		return n.Hostname
	}
	h := make([]byte, 0, 16)
	for i := 0; i < len(n.MAC); i++ {
		if n.MAC[i] != ':' {
			h = append(h, n.MAC[i])
		}
	}
	return "pxe-" + string(h)
}

// AssignProfile sets (or, with "", clears) the node's own profile and
// returns the admin event that records it. It is a func for Update.
func AssignProfile(name string) func(n *Node) (*Event, error) {
	return func(n *Node) (*Event, error) {
		n.Profile = name
		reason := "profile assignment cleared"
		if name != "" {
			reason = "profile set to " + name
		}
		return &Event{Type: EventAdmin, Reason: reason}, nil
	}
}
