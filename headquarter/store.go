package headquarter

import (
	"context"
	"time"
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

// DecisionStore keeps decisions. A held decision is recorded once, whole.
// An executed one is stored in progress before the Scaler is called
// (Start) and gets its final outcome when the call returns (Finish), so an
// action whose leader died midway is on record; the next leader marks it
// interrupted (Interrupt).
//
// Implementations are safe for concurrent use; returned slices belong to
// the caller. Each method is one transaction: nothing is half-written.
type DecisionStore interface {
	// Record stores decisions in one batch and assigns their IDs.
	Record(ctx context.Context, ds ...Decision) error
	// Start stores d with OutcomeInProgress and returns it with its ID.
	Start(ctx context.Context, d Decision) (Decision, error)
	// Finish replaces the decision with d.ID, which must still be in
	// progress, with d and its final outcome: ErrNotFound if there is no
	// such decision, ErrEnded if it is no longer in progress (a newer
	// leader interrupted it).
	Finish(ctx context.Context, d Decision) error
	// Interrupt ends every decision in progress that term did not make
	// (Decision.Term != term; every one when term is 0) with
	// OutcomeInterrupted, InterruptedReason and Finished at, and returns
	// them.
	Interrupt(ctx context.Context, term int64, at time.Time) ([]Decision, error)
	// Decisions lists stored decisions newest first (by Time, then ID).
	Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error)
}

// interrupt applies Interrupt to one decision; it reports whether the
// decision is one to end.
func interrupt(d *Decision, term int64, at time.Time) bool {
	if d.Outcome != OutcomeInProgress || (term != 0 && d.Term == term) {
		return false
	}
	d.Outcome, d.Error, d.Finished = OutcomeInterrupted, InterruptedReason, at
	return true
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
