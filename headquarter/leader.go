package headquarter

import (
	"context"
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

// Leader election defaults.
const (
	DefaultLeaderPrefix = "/kplane/headquarter/leader"
	DefaultLeaderTTL    = 10 * time.Second
)

// LeaderConfig configures a Leader. Client is required.
type LeaderConfig struct {
	Client *clientv3.Client
	// Prefix is the election's key prefix; "" is DefaultLeaderPrefix.
	Prefix string
	// ID is this process's name in the election, shown to the others;
	// "" is hostname-pid.
	ID string
	// TTL of the etcd session: a crashed leader is replaced after about
	// this long. Zero is DefaultLeaderTTL; it is rounded up to seconds.
	TTL time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Fence identifies one term of leadership: the leader's election key and
// the revision that created it. While the key exists with that revision,
// its holder is the leader; a deposed leader's fence never matches again.
type Fence struct {
	Key      string `json:"key"`
	Revision int64  `json:"revision"`
}

// Leader campaigns for the headquarter leadership with etcd's
// concurrency.Election and runs a function only while it leads.
type Leader struct {
	cfg    LeaderConfig
	client *clientv3.Client
	log    *slog.Logger

	mu    sync.Mutex
	fence Fence // zero while not leading
}

// NewLeader returns a Leader; nothing happens until Run.
func NewLeader(cfg LeaderConfig) (*Leader, error) {
	if cfg.Client == nil {
		return nil, errors.New("headquarter: leader needs an etcd client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultLeaderPrefix
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLeaderTTL
	}
	l := &Leader{cfg: cfg, client: cfg.Client, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l, nil
}

// ID returns this process's name in the election.
func (l *Leader) ID() string { return l.cfg.ID }

// Run campaigns until ctx ends. Each time it wins, it calls lead with a
// context that is cancelled the moment leadership is lost (the etcd session
// expires or the election key is deleted); when lead returns it resigns and
// campaigns again. Run returns nil when ctx ends, after resigning.
func (l *Leader) Run(ctx context.Context, lead func(ctx context.Context) error) error {
	ttl := max(int((l.cfg.TTL+time.Second-1)/time.Second), 1)
	for ctx.Err() == nil {
		if err := l.term(ctx, ttl, lead); err != nil && ctx.Err() == nil {
			l.log.Warn("leadership term ended with an error", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (l *Leader) term(ctx context.Context, ttl int, lead func(ctx context.Context) error) error {
	session, err := concurrency.NewSession(l.client, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer session.Close()
	e := concurrency.NewElection(session, l.cfg.Prefix)
	if err := e.Campaign(ctx, l.cfg.ID); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	fence := Fence{Key: e.Key(), Revision: e.Rev()}
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Lost when the session dies or the key goes away (deleted by hand,
	// or the lease revoked): stop acting at once, whatever lead is doing.
	watch := l.client.Watch(clientv3.WithRequireLeader(leadCtx), fence.Key, clientv3.WithRev(fence.Revision+1))
	var watching sync.WaitGroup
	watching.Go(func() {
		defer cancel()
		for {
			select {
			case <-session.Done():
				l.log.Warn("leadership lost: etcd session ended", "id", l.cfg.ID)
				return
			case <-leadCtx.Done():
				return
			case resp, ok := <-watch:
				if !ok || resp.Err() != nil {
					if leadCtx.Err() == nil {
						l.log.Warn("leadership lost: cannot watch the election key", "id", l.cfg.ID)
					}
					return
				}
				for _, ev := range resp.Events {
					if ev.Type == clientv3.EventTypeDelete {
						l.log.Warn("leadership lost: election key deleted", "id", l.cfg.ID)
						return
					}
				}
			}
		}
	})
	l.setFence(fence)
	l.log.Info("leading", "id", l.cfg.ID, "revision", fence.Revision)
	err = lead(leadCtx)
	l.setFence(Fence{})
	cancel()
	watching.Wait()

	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if rerr := e.Resign(rctx); rerr != nil {
		l.log.Debug("resign failed; the session's lease ends the term", "err", rerr)
	}
	l.log.Info("stopped leading", "id", l.cfg.ID)
	if err != nil && leadCtx.Err() == nil {
		return fmt.Errorf("lead: %w", err)
	}
	return nil
}

func (l *Leader) setFence(f Fence) {
	l.mu.Lock()
	l.fence = f
	l.mu.Unlock()
}

// IsLeader reports whether this process believes it leads. Act only through
// a fence check: belief can be stale.
func (l *Leader) IsLeader() bool {
	_, err := l.Fence()
	return err == nil
}

// Fence returns the current term's fence, or ErrNotLeader.
func (l *Leader) Fence() (Fence, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fence.Revision == 0 {
		return Fence{}, fmt.Errorf("fence of %s: %w", l.cfg.ID, ErrNotLeader)
	}
	return l.fence, nil
}

// Check asks etcd whether f is still the leader's fence: a transaction
// comparing the election key's CreateRevision with f.Revision. It returns
// ErrNotLeader when it is not (the key expired, was deleted or recreated),
// so a deposed leader's call is refused even before its session notices.
func (l *Leader) Check(ctx context.Context, f Fence) error {
	if f.Revision == 0 {
		return fmt.Errorf("check fence: %w", ErrNotLeader)
	}
	resp, err := l.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Revision)).Commit()
	if err != nil {
		return fmt.Errorf("check fence: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("fence %s@%d: %w", f.Key, f.Revision, ErrNotLeader)
	}
	return nil
}

// Current returns the ID of the current leader, or ErrNotFound when there
// is none.
func (l *Leader) Current(ctx context.Context) (string, error) {
	resp, err := l.client.Get(ctx, l.cfg.Prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("current leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("current leader: %w", ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// Leading checks in etcd that this process leads now: its current fence
// passes Check. It returns ErrNotLeader when it does not.
func (l *Leader) Leading(ctx context.Context) error {
	fence, err := l.Fence()
	if err == nil {
		err = l.Check(ctx, fence)
	}
	return err
}

// Fenced wraps s so that every Scale first checks this process's fence in
// etcd and is refused (OutcomeFailed, ErrNotLeader) when it no longer
// leads. A window remains between the check and the orchestrator acting;
// it is as short as one etcd round trip.
func (l *Leader) Fenced(s Scaler) Scaler {
	return fencedScaler{leader: l, next: s}
}

type fencedScaler struct {
	leader *Leader
	next   Scaler
}

func (f fencedScaler) Scale(ctx context.Context, req ScaleRequest) (Outcome, error) {
	if err := f.leader.Leading(ctx); err != nil {
		return OutcomeFailed, fmt.Errorf("scale %s: %w", req.Service, err)
	}
	return f.next.Scale(ctx, req)
}

// FencedDecisions wraps s so that every write (Record, Start, Finish,
// Interrupt) first checks this process's fence in etcd and is refused
// with ErrNotLeader, writing nothing, when it no longer leads: a deposed
// leader that is still alive cannot store a decision or an outcome next
// to the new leader's. Reads pass through. As with Fenced, a window of
// one etcd round trip remains between the check and the write.
func (l *Leader) FencedDecisions(s DecisionStore) DecisionStore {
	return fencedDecisions{leader: l, next: s}
}

var _ DecisionStore = fencedDecisions{}

type fencedDecisions struct {
	leader *Leader
	next   DecisionStore
}

func (f fencedDecisions) Record(ctx context.Context, ds ...Decision) error {
	if err := f.leader.Leading(ctx); err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return f.next.Record(ctx, ds...)
}

func (f fencedDecisions) Start(ctx context.Context, d Decision) (Decision, error) {
	if err := f.leader.Leading(ctx); err != nil {
		return Decision{}, fmt.Errorf("start decision of %s: %w", d.Service, err)
	}
	return f.next.Start(ctx, d)
}

func (f fencedDecisions) Finish(ctx context.Context, d Decision) error {
	if err := f.leader.Leading(ctx); err != nil {
		return fmt.Errorf("finish decision %d: %w", d.ID, err)
	}
	return f.next.Finish(ctx, d)
}

func (f fencedDecisions) Interrupt(ctx context.Context, term int64, at time.Time) ([]Decision, error) {
	if err := f.leader.Leading(ctx); err != nil {
		return nil, fmt.Errorf("interrupt decisions: %w", err)
	}
	return f.next.Interrupt(ctx, term, at)
}

func (f fencedDecisions) Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error) {
	return f.next.Decisions(ctx, q)
}
