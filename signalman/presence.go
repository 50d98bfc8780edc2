package signalman

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Replica liveness.
//
// Deploys and promotions are run by one kplane replica and owned by its
// name in the store. Each replica holds a key under /kplane/replicas/ on
// its own etcd session (a lease) for as long as it runs: a replica that
// stops cleanly revokes it, one that crashes or whose machine is gone
// loses it when the lease expires. Absence turns "no key" into "gone"
// only once the key has been missing for a grace period longer than the
// lease, so that a replica re-creating its session after a short etcd
// outage is not taken for dead; the Sweeper then ends the deploys such a
// replica left running, and hawaii's Sweeper its promotions.

// Presence defaults.
const (
	DefaultReplicasPrefix = "/kplane/replicas/"
	DefaultPresenceTTL    = 10 * time.Second
	// DefaultGrace is how long a replica's key must have been missing
	// before its work is ended: three leases, so that a replica whose
	// session lapsed in a short etcd outage has re-registered long before.
	DefaultGrace = 30 * time.Second
)

// ErrNameTaken means another live process holds this replica's name.
var ErrNameTaken = errors.New("replica name is held by another kplane")

// PresenceConfig configures a Presence. Client and Name are required.
type PresenceConfig struct {
	Client *clientv3.Client
	// Prefix holds one key per live replica; "" is DefaultReplicasPrefix.
	Prefix string
	// Name is this replica's name, the owner of the deploys and the
	// runner of the promotions it runs. It must be unique among live
	// replicas (Register refuses a name held by another session).
	Name string
	// TTL of the session; 0 is DefaultPresenceTTL, rounded up to seconds.
	TTL time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Presence keeps this replica's key in etcd while it runs, and lists the
// keys of every live replica. It is safe for concurrent use.
type Presence struct {
	cfg PresenceConfig
	log *slog.Logger
	key string

	mu      sync.Mutex
	session *concurrency.Session // nil while not registered
	cancel  context.CancelFunc   // of the session's keepalive
}

// NewPresence returns a Presence; Register puts the key.
func NewPresence(cfg PresenceConfig) (*Presence, error) {
	if cfg.Client == nil || cfg.Name == "" {
		return nil, errors.New("signalman: PresenceConfig needs a Client and a Name")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultReplicasPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultPresenceTTL
	}
	p := &Presence{cfg: cfg, log: cfg.Logger, key: cfg.Prefix + cfg.Name}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Name is this replica's name.
func (p *Presence) Name() string { return p.cfg.Name }

// Register creates the session and puts this replica's key on it. Call it
// before this replica starts any work, so that its work is never without
// a live key. ErrNameTaken if another session holds the name.
func (p *Presence) Register(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.session != nil {
		select {
		case <-p.session.Done():
		default:
			return nil // held
		}
		p.cancel()
		p.session, p.cancel = nil, nil
	}
	// The keepalive must outlive a cancelled Register, and Close must
	// still be able to revoke after Run's context ends: the session has
	// its own context, cancelled once it is closed.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ttl := max(int((p.cfg.TTL+time.Second-1)/time.Second), 1)
	s, err := concurrency.NewSession(p.cfg.Client, concurrency.WithTTL(ttl), concurrency.WithContext(sctx))
	if err != nil {
		cancel()
		return fmt.Errorf("replica %s: session: %w", p.cfg.Name, err)
	}
	value, _ := json.Marshal(map[string]any{"name": p.cfg.Name, "pid": os.Getpid(), "since": time.Now().UTC()})
	resp, err := p.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(p.key), "=", 0)).
		Then(clientv3.OpPut(p.key, string(value), clientv3.WithLease(s.Lease()))).
		Commit()
	if err == nil && !resp.Succeeded {
		err = fmt.Errorf("%w: %s", ErrNameTaken, p.key)
	}
	if err != nil {
		s.Close()
		cancel()
		return fmt.Errorf("replica %s: register: %w", p.cfg.Name, err)
	}
	p.session, p.cancel = s, cancel
	return nil
}

// Run keeps the key until ctx ends, registering again whenever the session
// is lost (etcd was unreachable for longer than the TTL), then revokes it,
// so that the other replicas see at once that this one stopped. It
// returns nil when ctx ends.
func (p *Presence) Run(ctx context.Context) error {
	defer p.close()
	for {
		p.mu.Lock()
		s := p.session
		p.mu.Unlock()
		var lost <-chan struct{}
		if s != nil {
			lost = s.Done()
		} else {
			if err := p.Register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				p.log.Warn("register replica", "replica", p.cfg.Name, "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				continue
			}
			p.log.Info("replica registered", "replica", p.cfg.Name, "key", p.key)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			p.log.Warn("replica session lost; registering again", "replica", p.cfg.Name)
			p.mu.Lock()
			if p.session == s {
				p.cancel()
				p.session, p.cancel = nil, nil
			}
			p.mu.Unlock()
		}
	}
}

// Close revokes the session, removing the key at once; Run does it when
// its context ends.
func (p *Presence) Close() { p.close() }

// close revokes the session, removing the key.
func (p *Presence) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.session == nil {
		return
	}
	if err := p.session.Close(); err != nil {
		p.log.Warn("revoke replica session", "replica", p.cfg.Name, "err", err)
	}
	p.cancel()
	p.session, p.cancel = nil, nil
}

// Live returns the names of the replicas holding a key now. It reads from
// the etcd quorum, so a replica cut off from etcd gets an error rather
// than an old answer.
func (p *Presence) Live(ctx context.Context) (map[string]bool, error) {
	resp, err := p.cfg.Client.Get(ctx, p.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("live replicas: %w", err)
	}
	live := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		live[strings.TrimPrefix(string(kv.Key), p.cfg.Prefix)] = true
	}
	return live, nil
}

// LiveLister lists the live replicas; Presence implements it.
type LiveLister interface {
	Live(ctx context.Context) (map[string]bool, error)
}

var _ LiveLister = (*Presence)(nil)

// AbsenceConfig configures an Absence. Replicas is required.
type AbsenceConfig struct {
	Replicas LiveLister
	// Grace is how long a replica must have been seen missing before it
	// is gone; 0 is DefaultGrace. Keep it well above the presence TTL.
	Grace time.Duration
	Now   func() time.Time // nil is time.Now
}

// Absence tells which replicas are gone: those whose key this process has
// seen missing, without interruption, for at least Grace. It learns by
// being asked: a name seen missing for the first time is not gone yet.
// It is safe for concurrent use, and meant to be shared by the sweepers
// of one process.
type Absence struct {
	cfg AbsenceConfig
	now func() time.Time

	mu      sync.Mutex
	missing map[string]time.Time // name → first seen missing
}

// NewAbsence returns an Absence that has seen nothing yet.
func NewAbsence(cfg AbsenceConfig) (*Absence, error) {
	if cfg.Replicas == nil {
		return nil, errors.New("signalman: AbsenceConfig needs Replicas")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	a := &Absence{cfg: cfg, now: cfg.Now, missing: map[string]time.Time{}}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Gone returns those of names that have been missing for at least Grace.
// When the live replicas cannot be listed it returns the error and no
// name: a replica is never declared gone on a guess.
func (a *Absence) Gone(ctx context.Context, names []string) (map[string]bool, error) {
	live, err := a.cfg.Replicas.Live(ctx)
	if err != nil {
		return nil, err
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for name := range a.missing {
		if live[name] {
			delete(a.missing, name) // back: its absence starts over
		}
	}
	gone := map[string]bool{}
	for _, name := range names {
		if live[name] {
			continue
		}
		since, seen := a.missing[name]
		if !seen {
			a.missing[name] = now
			continue
		}
		if now.Sub(since) >= a.cfg.Grace {
			gone[name] = true
		}
	}
	return gone, nil
}

// ReplicaGone is the error recorded on a deploy or promotion whose replica
// stopped while running it and did not come back.
func ReplicaGone(name string) string {
	return "interrupted: kplane replica " + name + " stopped while it was running"
}
