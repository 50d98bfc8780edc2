package registry

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// opTimeout bounds one grant, put or revoke. etcd's client waits for a
// connection instead of failing fast, so without it a registrar would sit
// in one call for a whole outage without logging anything.
const opTimeout = 5 * time.Second

// RegistrarConfig configures a Registrar.
type RegistrarConfig struct {
	// Client is the etcd client to register through. Required. Give it a
	// bounded gRPC reconnect backoff (grpc.WithConnectParams, MaxDelay of
	// a second or two): gRPC's default grows to two minutes, which after a
	// long etcd outage delays re-registration by as much.
	Client *clientv3.Client
	// Instance is what to register. Validated by NewRegistrar. A zero
	// Started is set to the time NewRegistrar is called.
	Instance Instance
	// TTL of the lease, rounded up to whole seconds (etcd's unit). A
	// crashed instance disappears within it. 0 means DefaultTTL.
	TTL time.Duration
	// Prefix of the keys. "" means DefaultPrefix; a missing trailing '/'
	// is added.
	Prefix string
	// Logger receives registration losses and recoveries. nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the jittered exponential wait
	// between failed registration attempts. 0 means DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Registrar keeps one instance registered in etcd for as long as its Run
// context lives, and removes it when that context ends.
type Registrar struct {
	client     *clientv3.Client
	key        string
	value      string
	ttl        int
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration

	registered     chan struct{}
	registeredOnce sync.Once
}

// NewRegistrar checks cfg and returns a Registrar; nothing is written to
// etcd until Run.
func NewRegistrar(cfg RegistrarConfig) (*Registrar, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("registrar: client is nil: %w", ErrInvalidConfig)
	}
	if err := cfg.Instance.Validate(); err != nil {
		return nil, fmt.Errorf("registrar: %w: %w", ErrInvalidConfig, err)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("registrar: ttl %v is negative: %w", cfg.TTL, ErrInvalidConfig)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Instance.Started.IsZero() {
		cfg.Instance.Started = time.Now().UTC()
	}
	value, err := cfg.Instance.marshal()
	if err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := cfg.Instance.Key(normalizePrefix(cfg.Prefix))
	return &Registrar{
		client:     cfg.Client,
		key:        key,
		value:      value,
		ttl:        int(math.Ceil(cfg.TTL.Seconds())),
		log:        log.With("key", key),
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		registered: make(chan struct{}),
	}, nil
}

// Registered is closed once the first registration succeeded, so a
// service can report ready only when it can be found.
func (r *Registrar) Registered() <-chan struct{} { return r.registered }

// Run registers the instance and keeps it registered until ctx ends. When
// the lease is lost (etcd unreachable for longer than the TTL, etcd
// restarted, the lease revoked by someone else) it grants a new lease and
// writes the key again, with jittered backoff, for as long as ctx lives.
// When ctx ends it revokes the lease, so the instance disappears at once
// instead of after the TTL, and returns nil. Call Run once.
func (r *Registrar) Run(ctx context.Context) error {
	b := newBackoff(r.minBackoff, r.maxBackoff)
	lost := false
	for {
		sess, err := r.register(ctx)
		if ctx.Err() != nil {
			if sess != nil {
				r.revoke(ctx, sess)
			}
			return nil
		}
		if err != nil {
			d := b.delay()
			r.log.Warn("registration failed, retrying", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		b.reset()
		if lost {
			r.log.Info("registered again", "lease", int64(sess.Lease()))
		} else {
			r.log.Info("registered", "lease", int64(sess.Lease()))
		}
		r.registeredOnce.Do(func() { close(r.registered) })

		select {
		case <-ctx.Done():
			r.revoke(ctx, sess)
			return nil
		case <-sess.Done():
			if ctx.Err() != nil {
				// The session ended because ctx did, not because etcd
				// lost it: this is a shutdown, not a loss.
				r.revoke(ctx, sess)
				return nil
			}
			// The keepalive stream ended: etcd forgot the lease or has been
			// unreachable for a TTL. Either way the key is gone or about
			// to go, so start over with a new lease.
			lost = true
			r.log.Warn("registration lost, registering again", "lease", int64(sess.Lease()))
		}
	}
}

// register grants a lease, starts its keepalive and writes the key. A
// session whose key write failed is abandoned: its lease holds nothing and
// expires by itself.
func (r *Registrar) register(ctx context.Context) (*concurrency.Session, error) {
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	lease, err := r.client.Grant(opCtx, int64(r.ttl))
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	sess, err := concurrency.NewSession(r.client,
		concurrency.WithTTL(r.ttl),
		concurrency.WithLease(lease.ID),
		concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("keep lease alive: %w", err)
	}
	if _, err := r.client.Put(opCtx, r.key, r.value, clientv3.WithLease(sess.Lease())); err != nil {
		if ctx.Err() != nil {
			// Shutting down mid-write: the put may have landed, so take
			// the lease (and the key) down rather than leave it for a TTL.
			r.revoke(ctx, sess)
		} else {
			sess.Orphan()
		}
		return nil, fmt.Errorf("put %s: %w", r.key, err)
	}
	return sess, nil
}

// revoke removes the registration when Run's context ended. It runs on a
// fresh short context: the cancelled one would fail the call at once.
func (r *Registrar) revoke(ctx context.Context, sess *concurrency.Session) {
	sess.Orphan()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if _, err := r.client.Revoke(rctx, sess.Lease()); err != nil {
		r.log.Warn("revoke on shutdown failed; the instance disappears when its lease expires",
			"lease", int64(sess.Lease()), "err", err)
		return
	}
	r.log.Info("deregistered")
}

func normalizePrefix(p string) string {
	if p == "" {
		return DefaultPrefix
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}
