package headquarter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryDecisionCap is how many decisions a MemoryStore keeps; older ones
// are dropped first.
const MemoryDecisionCap = 100_000

// MemoryStore is a Store in memory, for tests, replays and benchmarks. It
// passes the same conformance tests as SQLStore. The zero value is not
// usable; call NewMemoryStore.
type MemoryStore struct {
	mu        sync.Mutex
	nextID    int64
	decisions []Decision // in recording order
	policies  map[string]Policy
	sorted    []Policy // policies by service; nil after a change
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{policies: map[string]Policy{}}
}

// Record implements DecisionStore.
func (s *MemoryStore) Record(ctx context.Context, ds ...Decision) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.nextID++
		d.ID = s.nextID
		s.decisions = append(s.decisions, cloneDecision(d))
	}
	if over := len(s.decisions) - MemoryDecisionCap; over > 0 {
		s.decisions = slices.Delete(s.decisions, 0, over)
	}
	return nil
}

// Start implements DecisionStore.
func (s *MemoryStore) Start(ctx context.Context, d Decision) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("start decision of %s: %w", d.Service, err)
	}
	d.Outcome = OutcomeInProgress
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	d.ID = s.nextID
	s.decisions = append(s.decisions, cloneDecision(d))
	if over := len(s.decisions) - MemoryDecisionCap; over > 0 {
		s.decisions = slices.Delete(s.decisions, 0, over)
	}
	return cloneDecision(d), nil
}

// Finish implements DecisionStore.
func (s *MemoryStore) Finish(ctx context.Context, d Decision) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("finish decision %d: %w", d.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// In-progress decisions are among the newest.
	for i := len(s.decisions) - 1; i >= 0; i-- {
		if s.decisions[i].ID != d.ID {
			continue
		}
		if s.decisions[i].Outcome != OutcomeInProgress {
			return fmt.Errorf("finish decision %d: %w", d.ID, ErrEnded)
		}
		s.decisions[i] = cloneDecision(d)
		return nil
	}
	return fmt.Errorf("finish decision %d: %w", d.ID, ErrNotFound)
}

// Interrupt implements DecisionStore.
func (s *MemoryStore) Interrupt(ctx context.Context, term int64, at time.Time) ([]Decision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupt decisions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Decision
	for i := range s.decisions {
		if interrupt(&s.decisions[i], term, at) {
			out = append(out, cloneDecision(s.decisions[i]))
		}
	}
	return out, nil
}

// Decisions implements DecisionStore.
func (s *MemoryStore) Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list decisions: %w", err)
	}
	s.mu.Lock()
	var out []Decision
	for _, d := range s.decisions {
		if q.Service == "" || d.Service == q.Service {
			out = append(out, cloneDecision(d))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, newestFirst)
	if len(out) > q.limit() {
		out = out[:q.limit()]
	}
	return out, nil
}

func newestFirst(a, b Decision) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	switch {
	case a.ID > b.ID:
		return -1
	case a.ID < b.ID:
		return 1
	}
	return 0
}

func cloneDecision(d Decision) Decision {
	d.Votes = slices.Clone(d.Votes)
	return d
}

// Policy implements PolicyStore.
func (s *MemoryStore) Policy(ctx context.Context, service string) (Policy, error) {
	if err := ctx.Err(); err != nil {
		return Policy{}, fmt.Errorf("get policy %s: %w", service, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[service]
	if !ok {
		return Policy{}, fmt.Errorf("policy of %s: %w", service, ErrNotFound)
	}
	return p, nil
}

// PutPolicy implements PolicyStore.
func (s *MemoryStore) PutPolicy(ctx context.Context, p Policy) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put policy %s: %w", p.Service, err)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[p.Service] = p.WithDefaults()
	s.sorted = nil
	return nil
}

// Policies implements PolicyStore.
func (s *MemoryStore) Policies(ctx context.Context) ([]Policy, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The Loop lists every policy every tick; sort once per change.
	if s.sorted == nil {
		s.sorted = make([]Policy, 0, len(s.policies))
		for _, p := range s.policies {
			s.sorted = append(s.sorted, p)
		}
		slices.SortFunc(s.sorted, func(a, b Policy) int { return strings.Compare(a.Service, b.Service) })
	}
	return slices.Clone(s.sorted), nil
}
