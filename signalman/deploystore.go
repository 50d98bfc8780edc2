package signalman

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// DeployStore keeps the records of rolling deploys, so that the deploy
// list and each deploy's steps outlive the process that ran them, and
// every replica can show them. MemoryDeployStore and SQLDeployStore
// implement it and pass the same conformance suite.
//
// The Deployer is the only writer of a record while it runs: Create once,
// AddStep for each step in order, Finish once. Implementations are safe
// for concurrent use; returned values belong to the caller. Times are kept
// to the nanosecond and come back in UTC. Context cancellation aborts a
// call with the context's error and leaves nothing half-written.
type DeployStore interface {
	// Create stores a new deploy (normally running, with no steps) run by
	// owner, the name of the kplane replica executing it.
	Create(ctx context.Context, d Deploy, owner string) error
	// AddStep stores step n (0-based, in order) of deploy id.
	// ErrUnknownDeploy if id is not stored.
	AddStep(ctx context.Context, id string, n int, s Step) error
	// Finish stores d's final State, Error and Ended.
	// ErrUnknownDeploy if d.ID is not stored.
	Finish(ctx context.Context, d Deploy) error
	// Get returns one deploy with its steps, or ErrUnknownDeploy.
	Get(ctx context.Context, id string) (Deploy, error)
	// List returns up to limit deploys (0: all), newest first, with their
	// steps; a non-empty t.Service or t.Env keeps only the deploys that
	// match it.
	List(ctx context.Context, t Target, limit int) ([]Deploy, error)
	// Interrupt ends every deploy of owner that is still running as
	// failed at at, with reason as its error, and returns their IDs. A
	// replica calls it as it starts: the deploys it was running when it
	// stopped can no longer finish.
	Interrupt(ctx context.Context, owner string, at time.Time, reason string) ([]string, error)
}

// MemoryDeployStore is a DeployStore in memory: the records live as long
// as the process. It keeps at most Keep finished deploys.
type MemoryDeployStore struct {
	keep int

	mu      sync.Mutex
	deploys map[string]*memDeploy
	order   []string // IDs, oldest first
}

type memDeploy struct {
	d     Deploy
	owner string
}

var _ DeployStore = (*MemoryDeployStore)(nil)

// NewMemoryDeployStore returns an empty store that forgets the oldest
// finished deploys beyond keep (0 means 200).
func NewMemoryDeployStore(keep int) *MemoryDeployStore {
	if keep <= 0 {
		keep = 200
	}
	return &MemoryDeployStore{keep: keep, deploys: map[string]*memDeploy{}}
}

// utc is t as the SQL stores give it back: nanoseconds since the epoch, in
// UTC, zero for zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

func normalizeDeploy(d Deploy) Deploy {
	d.Started, d.Ended = utc(d.Started), utc(d.Ended)
	steps := make([]Step, len(d.Steps))
	for i, s := range d.Steps {
		s.Time = utc(s.Time)
		steps[i] = s
	}
	d.Steps = steps
	return d
}

// Create implements DeployStore.
func (s *MemoryDeployStore) Create(ctx context.Context, d Deploy, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.deploys[d.ID]; ok {
		return fmt.Errorf("%w: deploy %s is stored already", ErrInvalid, d.ID)
	}
	s.deploys[d.ID] = &memDeploy{d: normalizeDeploy(d), owner: owner}
	s.order = append(s.order, d.ID)
	s.forgetLocked()
	return nil
}

// forgetLocked drops the oldest finished deploys beyond keep.
func (s *MemoryDeployStore) forgetLocked() {
	for len(s.order) > s.keep {
		i := slices.IndexFunc(s.order, func(id string) bool { return s.deploys[id].d.State.Done() })
		if i < 0 {
			return
		}
		delete(s.deploys, s.order[i])
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// AddStep implements DeployStore.
func (s *MemoryDeployStore) AddStep(ctx context.Context, id string, n int, st Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.deploys[id]
	if m == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDeploy, id)
	}
	st.Time = utc(st.Time)
	switch {
	case n < len(m.d.Steps):
		m.d.Steps[n] = st
	case n == len(m.d.Steps):
		m.d.Steps = append(m.d.Steps, st)
	default:
		return fmt.Errorf("%w: step %d of deploy %s after %d steps", ErrInvalid, n, id, len(m.d.Steps))
	}
	return nil
}

// Finish implements DeployStore.
func (s *MemoryDeployStore) Finish(ctx context.Context, d Deploy) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.deploys[d.ID]
	if m == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDeploy, d.ID)
	}
	m.d.State, m.d.Error, m.d.Ended = d.State, d.Error, utc(d.Ended)
	s.forgetLocked()
	return nil
}

// Get implements DeployStore.
func (s *MemoryDeployStore) Get(ctx context.Context, id string) (Deploy, error) {
	if err := ctx.Err(); err != nil {
		return Deploy{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.deploys[id]
	if m == nil {
		return Deploy{}, fmt.Errorf("%w: %q", ErrUnknownDeploy, id)
	}
	return m.d.clone(), nil
}

// List implements DeployStore.
func (s *MemoryDeployStore) List(ctx context.Context, t Target, limit int) ([]Deploy, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Deploy
	for i := len(s.order) - 1; i >= 0; i-- {
		d := s.deploys[s.order[i]].d
		if (t.Service != "" && d.Target.Service != t.Service) || (t.Env != "" && d.Target.Env != t.Env) {
			continue
		}
		out = append(out, d.clone())
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// Interrupt implements DeployStore.
func (s *MemoryDeployStore) Interrupt(ctx context.Context, owner string, at time.Time, reason string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, id := range s.order {
		m := s.deploys[id]
		if m.owner == owner && !m.d.State.Done() {
			m.d.State, m.d.Error, m.d.Ended = DeployFailed, reason, utc(at)
			ids = append(ids, id)
		}
	}
	return ids, nil
}
