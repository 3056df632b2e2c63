package store

import "time"

// State is where a node stands in the reinstall lifecycle:
//
//	             POST /nodes/<mac>/reinstall (from any state)
//	local ──────────────────────────────────────► reinstall
//	  ▲  ◄──────────────────────────────────────     │
//	  │   DELETE /nodes/<mac>/reinstall              │ GET /boot (or GRUB) serves the
//	  │                                              │ installer: flag consumed, token made
//	  │                                              ▼
//	  │                                          installing ◄─┐ progress call-back
//	  │                                           │    │   └──┘ (restarts the stall clock)
//	  │        installer call-back "installed"    │    │ call-back "failed", or no word
//	  │                      ┌────────────────────┘    │ for PXE_INSTALL_TIMEOUT ("stalled")
//	  │                      ▼                         ▼
//	  └──── (boots local) installed                  failed (boots local)
//
// The flag is consumed by serving the installer once, so a machine can never
// reinstall in a loop; it is kept while the installer was never served (the
// appliance was misconfigured, or the machine never booted), so a requested
// reinstall is never lost. Call-backs carry the per-install token the
// appliance put into what it served for that install (Install.Token); the
// transitions themselves are the pure methods in lifecycle.go.
type State string

// The lifecycle states. Every state but StateReinstall boots from local disk.
const (
	StateLocal      State = "local"
	StateReinstall  State = "reinstall"
	StateInstalling State = "installing"
	StateInstalled  State = "installed"
	StateFailed     State = "failed"
)

// States lists every state, for metrics and validation.
var States = []State{StateLocal, StateReinstall, StateInstalling, StateInstalled, StateFailed}

// Facts are what iPXE knows about the hardware, as reported on /boot.
type Facts struct {
	Platform     string `json:"platform,omitempty" cbor:"1,keyasint,omitempty"`  // "pcbios" or "efi"
	BuildArch    string `json:"buildarch,omitempty" cbor:"2,keyasint,omitempty"` // "i386", "x86_64", "arm64"
	UUID         string `json:"uuid,omitempty" cbor:"3,keyasint,omitempty"`
	Serial       string `json:"serial,omitempty" cbor:"4,keyasint,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty" cbor:"5,keyasint,omitempty"`
	Product      string `json:"product,omitempty" cbor:"6,keyasint,omitempty"`
}

// Node is one machine the appliance knows.
type Node struct {
	MAC MAC `json:"mac" cbor:"1,keyasint,omitempty"`
	// Reinstall is true while the next boot will serve the installer
	// (State == StateReinstall); kept for the clients that read it.
	Reinstall bool  `json:"reinstall" cbor:"2,keyasint,omitempty"`
	State     State `json:"state" cbor:"3,keyasint,omitempty"`
	// LocalBootScript is the node's own local-boot command ("" means the
	// appliance's default for its platform).
	LocalBootScript string     `json:"local_boot_script" cbor:"4,keyasint,omitempty"`
	LastSeen        *time.Time `json:"last_seen" cbor:"5,keyasint,omitempty"`
	CreatedAt       time.Time  `json:"created_at" cbor:"6,keyasint,omitempty"`
	StateChangedAt  time.Time  `json:"state_changed_at" cbor:"7,keyasint,omitempty"`
	LastIP          string     `json:"last_ip,omitempty" cbor:"8,keyasint,omitempty"`
	BootCount       uint64     `json:"boot_count" cbor:"9,keyasint,omitempty"`
	// InstallCount counts the times the installer script was served.
	InstallCount uint64 `json:"install_count" cbor:"10,keyasint,omitempty"`
	Facts        Facts  `json:"facts" cbor:"11,keyasint,omitempty"`

	// Profile is the boot profile an admin assigned to this node; empty
	// means the groups and the default decide (package profiles).
	Profile string `json:"profile,omitempty" cbor:"12,keyasint,omitempty"`
	// Hostname is the admin's name for the node, offered to templates;
	// empty means templates get a name made from the MAC.
	Hostname string `json:"hostname,omitempty" cbor:"13,keyasint,omitempty"`
	// Labels are the admin's tags (group selectors match on them) and
	// Vars free values for templates; keys and values are checked by
	// ValidateLabel.
	Labels map[string]string `json:"labels,omitempty" cbor:"14,keyasint,omitempty"`
	Vars   map[string]string `json:"vars,omitempty" cbor:"15,keyasint,omitempty"`
	// Install is the current or latest install: what was served, its
	// token, progress and outcome. Nil until the first install.
	Install *Install `json:"install,omitempty" cbor:"16,keyasint,omitempty"`
}

func newNode(mac MAC, now time.Time) Node {
	return Node{MAC: mac, State: StateLocal, CreatedAt: now, StateChangedAt: now}
}

func (n *Node) setState(s State, now time.Time) {
	if n.State != s {
		n.State = s
		n.StateChangedAt = now
	}
	n.Reinstall = s == StateReinstall
}

// Decision labels recorded in boot events and metrics.
const (
	DecisionReinstall = "reinstall"
	DecisionLocal     = "local"
	DecisionError     = "error"
)

// Event types besides boots (an empty Type is a boot).
const (
	EventBoot      = ""
	EventProgress  = "progress"
	EventInstalled = "installed"
	EventFailed    = "failed"
	EventAdmin     = "admin"
)

// Event is one boot of a node, or one step of its install (Type).
type Event struct {
	Time time.Time `json:"time" cbor:"1,keyasint,omitempty"`
	// Type is empty for a boot, else one of the Event* names.
	Type     string `json:"type,omitempty" cbor:"2,keyasint,omitempty"`
	IP       string `json:"ip,omitempty" cbor:"3,keyasint,omitempty"`
	Decision string `json:"decision,omitempty" cbor:"4,keyasint,omitempty"`
	// Reason says why, in words, when the decision was not the obvious one
	// (for example "reinstall requested but PXE_UBUNTU_KERNEL_URL is unset").
	Reason string `json:"reason,omitempty" cbor:"5,keyasint,omitempty"`
	// Profile and Rule: the boot profile served and the rule that chose it
	// ("node setting", "group dell (profiles.yaml:12)", "default").
	Profile string `json:"profile,omitempty" cbor:"6,keyasint,omitempty"`
	Rule    string `json:"rule,omitempty" cbor:"7,keyasint,omitempty"`
	// Loader is what asked: "ipxe" or "grub".
	Loader string `json:"loader,omitempty" cbor:"8,keyasint,omitempty"`
	// State is the node's state after the event.
	State State `json:"state,omitempty" cbor:"9,keyasint,omitempty"`
}

// Sighting is what one /boot request tells about a node.
type Sighting struct {
	Time  time.Time
	IP    string
	Facts Facts
}
