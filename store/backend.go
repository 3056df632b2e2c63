package store

import (
	"io"
	"time"
)

// Backend is everything the appliance's servers need from a node store.
// *Store (Badger, embedded) implements it; another engine (etcd, for
// several appliances) implements the same contract and passes the same
// conformance suite (package storetest).
//
// The durability contract every implementation keeps: a method that
// changes a node's lifecycle state or an admin setting returns only after
// the change is durable (fsynced, or committed by a quorum); boot
// bookkeeping may trail by a bounded interval. RecordBoot's decide runs
// against the node as stored at commit time, so a reinstall flag is
// consumed exactly once however many boots race for it.
type Backend interface {
	Get(MAC) (Node, error)
	List() ([]Node, error)
	ListPage(after MAC, limit int, f Filter) ([]Node, MAC, error)
	Events(MAC) ([]Event, error)
	CountByState() (map[State]int, error)

	SetReinstall(m MAC, on bool, now time.Time) (Node, error)
	SetLocalBootScript(m MAC, script string, now time.Time) (Node, error)
	MarkInstalled(m MAC, now time.Time) (Node, error)
	Update(m MAC, create bool, now time.Time, fn func(n *Node) (*Event, error)) (Node, error)
	Delete(MAC) error
	RecordBoot(m MAC, sg Sighting, decide func(*Node) Event) (Node, Event, error)
	// Installing calls fn for each node in StateInstalling until it
	// returns false.
	Installing(fn func(Node) bool) error

	// Subscribe follows every committed change (from any appliance, for a
	// shared backend).
	Subscribe(buf int) *Subscription
	Ping() error
	Close() error
}

// Backuper is implemented by backends that can write a consistent backup.
type Backuper interface {
	Backup(w io.Writer) error
}

var _ Backend = (*Store)(nil)
