// Package etcdstore keeps PXE Pilot's nodes in etcd v3, so several
// appliances share one state. It implements store.Backend and passes the
// same conformance suite as the embedded Badger store (store/storetest).
//
// # Layout
//
// Under Options.Prefix (default "/pxe-pilot/"):
//
//	n/<mac>              JSON store.Node
//	e/<mac>/<%016x seq>  JSON store.Event, the last Options.History kept
//	i/<mac>              present while the node is installing
//
// # Exactly once, across appliances
//
// Every write reads the node and its event keys in one snapshot, computes
// the new node, and commits in one transaction guarded by the node key's
// ModRevision (0: the node must not exist). A writer that lost the race
// (another appliance wrote the node in between) reads again and decides
// again, so a reinstall flag is consumed by exactly one boot however many
// appliances race for it. Writers of one node in one appliance queue on a
// local lock first, so a boot storm costs retries only between appliances.
//
// # Durability
//
// A transaction's answer is a quorum commit: every method returns after
// a majority of the etcd members has the change in its log on disk.
// Nothing trails, not even boot bookkeeping.
//
// # When etcd is unreachable
//
// Every call is bounded by Options.Timeout (default 2 s): it fails, and
// nothing is consumed (a boot that cannot commit cannot have taken the
// flag, so the appliance serves its error script and the machine falls
// through to its disk). Ping fails the same way, so /health says 503.
// The client reconnects on its own, with a back-off of at most 2 s.
//
// # Counts and the change feed
//
// One watch on the prefix, started after a listing of the nodes at a known
// revision, keeps a map of node states (the per-state counts) and feeds
// Subscribe, so changes made by every appliance are counted and told. On
// a compacted revision or a broken watch the nodes are listed again and
// subscribers are marked lagged.
package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// ErrConflict means a node was written by others on every attempt: too
// many appliances wrote the same node at the same moment.
var ErrConflict = errors.New("node written concurrently by other appliances on every attempt")

// Options configure a Store. Endpoints is required.
type Options struct {
	// Endpoints are client URLs of etcd members, e.g.
	// "http://10.0.0.1:2379" ("https://" with TLS).
	Endpoints []string
	// Prefix of every key (default "/pxe-pilot/"); appliances sharing
	// nodes use the same prefix.
	Prefix string
	// CAFile verifies the members' certificates; CertFile and KeyFile are
	// this client's certificate (TLS client authentication). Any of them
	// turns TLS on.
	CAFile, CertFile, KeyFile string
	// Username and Password for etcd's authentication (optional).
	Username, Password string
	// History is how many events are kept per node (default 20).
	History int
	// Timeout bounds every call, queueing and retries included (default
	// 2 s). A boot waits at most this long before it falls through to
	// the local disk.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Store is an etcd-backed store.Backend, safe for concurrent use.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	history int
	timeout time.Duration
	log     *slog.Logger
	eps     string

	// stripes queue the writers of one node in this appliance (by a hash
	// of its MAC), bounded by the call's context.
	stripes [64]stripe

	feed store.Feed
	view view // node states from the watch: counts

	lastWrite  atomic.Int64  // revision of this client's newest commit
	synced     chan struct{} // closed after the first listing
	syncedOnce sync.Once
	cancel     context.CancelFunc
	done       chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

var _ store.Backend = (*Store)(nil)

// Open connects to etcd and starts the watch that keeps the counts and the
// change feed, waiting at most Timeout for its first listing of the
// nodes. Without authentication it does not need etcd: an appliance
// starts while etcd is down, answers /health 503 and lets machines boot
// their disks until etcd answers. With a Username, the
// client must log in first: Open fails after Timeout when etcd does not
// answer, and at once on a wrong password.
func Open(o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints given")
	}
	if o.Prefix == "" {
		o.Prefix = "/pxe-pilot/"
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.History <= 0 {
		o.History = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	var dial time.Duration
	if o.Username != "" {
		// With authentication the client fetches its token inside New,
		// which waits for etcd without end unless bounded: an appliance
		// with a user set needs etcd at start-up, and fails after
		// Timeout (its supervisor restarts it) instead of hanging.
		dial = o.Timeout
	}
	cli, err := clientv3.New(clientv3.Config{
		DialTimeout:          dial,
		Endpoints:            o.Endpoints,
		TLS:                  tlsCfg,
		Username:             o.Username,
		Password:             o.Password,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			// gRPC's default back-off grows to 2 minutes: an appliance
			// cut off from etcd would stay away long after it is back.
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: o.Timeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{cli: cli, prefix: o.Prefix, history: o.History, timeout: o.Timeout, log: o.Logger,
		eps: strings.Join(o.Endpoints, ","), cancel: cancel, done: make(chan struct{})}
	for i := range s.stripes {
		s.stripes[i].held = make(chan struct{}, 1)
	}
	s.view.init()
	s.synced = make(chan struct{})
	go s.watchLoop(ctx)
	// Wait for the first listing, so every change committed after Open
	// returns reaches the counts and the subscribers as a change (one
	// committed before the listing would only be part of it). When etcd
	// does not answer, start anyway; the watch catches up when it does.
	select {
	case <-s.synced:
	case <-time.After(o.Timeout):
		o.Logger.Warn("etcd: nodes not listed yet; counts and the change feed start when etcd answers", "endpoints", s.eps)
	}
	return s, nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" {
		return nil, nil
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("etcd TLS: a client certificate needs both its certificate and its key file")
	}
	info := transport.TLSInfo{TrustedCAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS (CA %q, certificate %q, key %q): %w", o.CAFile, o.CertFile, o.KeyFile, err)
	}
	return c, nil
}

// Close stops the watch, ends every subscription and closes the client.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.feed.CloseAll()
		s.closeErr = s.cli.Close()
	})
	return s.closeErr
}

// Ping is a quorum read of one key: it fails when this appliance cannot
// reach a majority of the etcd members within Options.Timeout.
func (s *Store) Ping() error {
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.cli.Get(ctx, s.prefix+"n/", clientv3.WithCountOnly()); err != nil {
		return s.unreachable(err)
	}
	return nil
}

// Subscribe follows every change committed by any appliance, as the
// watch sees it.
func (s *Store) Subscribe(buf int) *store.Subscription { return s.feed.Subscribe(buf) }

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// unreachable words an etcd error for the operator.
func (s *Store) unreachable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd at %s did not answer within %s (a majority of the members must be up and reachable from this appliance): %w", s.eps, s.timeout, err)
	}
	return fmt.Errorf("etcd at %s: %w", s.eps, err)
}

func (s *Store) nodeKey(m store.MAC) string       { return s.prefix + "n/" + string(m) }
func (s *Store) eventPrefix(m store.MAC) string   { return s.prefix + "e/" + string(m) + "/" }
func (s *Store) installingKey(m store.MAC) string { return s.prefix + "i/" + string(m) }

// stripe is one of the local write locks, and the node its holder last
// wrote as committed: the next write of that node tries its compare-and-
// swap on it at once, one round trip instead of two. When another
// appliance wrote the node since, the swap fails and its Else branch
// brings the node as stored; a refusal decided on the entry is confirmed
// against etcd before it is given (update).
type stripe struct {
	held chan struct{}
	last *snapshot // guarded by held
}

// lock queues for the node's stripe until ctx ends.
func (s *Store) lock(ctx context.Context, m store.MAC) (*stripe, error) {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(m); i++ {
		h = (h ^ uint32(m[i])) * 16777619
	}
	st := &s.stripes[h%uint32(len(s.stripes))]
	select {
	case st.held <- struct{}{}:
		return st, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("node %s: still queued behind this appliance's other writes of the node after %s (a boot storm of one machine, or etcd is slow): %w", m, s.timeout, ctx.Err())
	}
}

func (st *stripe) unlock() { <-st.held }
