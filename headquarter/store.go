package headquarter

import (
	"context"
)

// Listing limits for DecisionQuery.
const (
	DefaultDecisionLimit = 100
	MaxDecisionLimit     = 1000
)

// DecisionQuery selects stored decisions. Zero values mean every service
// and DefaultDecisionLimit; a Limit above MaxDecisionLimit is lowered to it.
type DecisionQuery struct {
	Service string
	Limit   int
}

func (q DecisionQuery) limit() int {
	switch {
	case q.Limit <= 0:
		return DefaultDecisionLimit
	case q.Limit > MaxDecisionLimit:
		return MaxDecisionLimit
	}
	return q.Limit
}

// DecisionStore keeps decisions. Decisions are immutable once recorded:
// the Loop records an executed decision after its Scaler returned, with
// its outcome.
//
// Implementations are safe for concurrent use; returned slices belong to
// the caller.
type DecisionStore interface {
	// Record stores decisions in one batch and assigns their IDs.
	Record(ctx context.Context, ds ...Decision) error
	// Decisions lists stored decisions newest first (by Time, then ID).
	Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error)
}

// PolicyStore keeps one policy per service.
//
// Implementations are safe for concurrent use.
type PolicyStore interface {
	// Policy returns the service's policy, or ErrNotFound.
	Policy(ctx context.Context, service string) (Policy, error)
	// PutPolicy validates p (ErrInvalidPolicy) and stores it with its
	// defaults filled in, replacing the service's previous policy.
	PutPolicy(ctx context.Context, p Policy) error
	// Policies lists every policy, ordered by service.
	Policies(ctx context.Context) ([]Policy, error)
}

// Store is both stores; MemoryStore and SQLStore implement it.
type Store interface {
	DecisionStore
	PolicyStore
}
