package store

import "time"

// State is where a node stands in the reinstall lifecycle:
//
//	          POST /nodes/<mac>/reinstall
//	local ───────────────────────────────► reinstall
//	  ▲  ◄───────────────────────────────     │
//	  │   DELETE /nodes/<mac>/reinstall       │ GET /boot serves the installer
//	  │                                       ▼
//	  │                                   installing ──► (every later boot: local disk)
//	  │                                       │
//	  │                                       │ POST /installed?mac=<mac> (installer call-back)
//	  └──── (boots local) ◄── installed ◄─────┘
//
// The flag is consumed by serving the installer script once, so a machine
// can never reinstall in a loop; it is kept while the installer was never
// served (the appliance was misconfigured, or the machine never booted), so
// a requested reinstall is never lost. A node stuck in installing has fetched
// the installer but never reported back: the admin looks at it and asks again.
type State string

// The lifecycle states. Every state but StateReinstall boots from local disk.
const (
	StateLocal      State = "local"
	StateReinstall  State = "reinstall"
	StateInstalling State = "installing"
	StateInstalled  State = "installed"
)

// States lists every state, for metrics and validation.
var States = []State{StateLocal, StateReinstall, StateInstalling, StateInstalled}

// Facts are what iPXE knows about the hardware, as reported on /boot.
type Facts struct {
	Platform     string `json:"platform,omitempty"`  // "pcbios" or "efi"
	BuildArch    string `json:"buildarch,omitempty"` // "i386", "x86_64", "arm64"
	UUID         string `json:"uuid,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
}

// Node is one machine the appliance knows.
type Node struct {
	MAC MAC `json:"mac"`
	// Reinstall is true while the next boot will serve the installer
	// (State == StateReinstall); kept for the clients that read it.
	Reinstall bool  `json:"reinstall"`
	State     State `json:"state"`
	// LocalBootScript is the node's own local-boot command ("" means the
	// appliance's default for its platform).
	LocalBootScript string     `json:"local_boot_script"`
	LastSeen        *time.Time `json:"last_seen"`
	CreatedAt       time.Time  `json:"created_at"`
	StateChangedAt  time.Time  `json:"state_changed_at"`
	LastIP          string     `json:"last_ip,omitempty"`
	BootCount       uint64     `json:"boot_count"`
	// InstallCount counts the times the installer script was served.
	InstallCount uint64 `json:"install_count"`
	Facts        Facts  `json:"facts"`
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

// StartInstall records that the installer script is being served: the
// reinstall flag is consumed. It reports false, changing nothing, when the
// node was not waiting for a reinstall.
func (n *Node) StartInstall(now time.Time) bool {
	if n.State != StateReinstall {
		return false
	}
	n.setState(StateInstalling, now)
	n.InstallCount++
	return true
}

// Decision labels recorded in boot events and metrics.
const (
	DecisionReinstall = "reinstall"
	DecisionLocal     = "local"
	DecisionError     = "error"
)

// Event is one boot of a node.
type Event struct {
	Time     time.Time `json:"time"`
	IP       string    `json:"ip,omitempty"`
	Decision string    `json:"decision"`
	// Reason says why, in words, when the decision was not the obvious one
	// (for example "reinstall requested but PXE_UBUNTU_KERNEL_URL is unset").
	Reason string `json:"reason,omitempty"`
}

// Sighting is what one /boot request tells about a node.
type Sighting struct {
	Time  time.Time
	IP    string
	Facts Facts
}
