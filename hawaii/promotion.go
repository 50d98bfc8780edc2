package hawaii

import (
	"errors"
	"fmt"
	"time"
)

// Promotions.
//
// A promotion is one build entering one environment: the throwaway alpha
// environment of the build, the long-lived qa, or prod. It is an explicit
// state machine; every change of state goes through Advance, which
// consults the transition table below and refuses anything else, so a
// crashed runner or a double click can never move a promotion sideways.
//
//	pending ──► deploying ──► testing ──► passed ──► superseded
//	   │            │            │
//	   │            ├──► passed (prod: the rollout is the test)
//	   │            ├──► rolled_back (signalman turned the rollout back)
//	   └──► cancelled  └──► failed ◄──┘
//
// pending may also end cancelled (a lock or pin appeared before it
// started) or failed (the environment could not be created). passed ends
// only by superseded, when a later promotion into the same environment
// passes.

// PromotionState is where a promotion is.
type PromotionState string

const (
	PromotionPending    PromotionState = "pending"
	PromotionDeploying  PromotionState = "deploying"
	PromotionTesting    PromotionState = "testing"
	PromotionPassed     PromotionState = "passed"
	PromotionFailed     PromotionState = "failed"
	PromotionRolledBack PromotionState = "rolled_back"
	PromotionCancelled  PromotionState = "cancelled"
	PromotionSuperseded PromotionState = "superseded"
)

// PromotionStates lists every state, in pipeline order.
func PromotionStates() []PromotionState {
	return []PromotionState{PromotionPending, PromotionDeploying, PromotionTesting, PromotionPassed,
		PromotionFailed, PromotionRolledBack, PromotionCancelled, PromotionSuperseded}
}

// Done reports whether the promotion has ended (its environment no longer
// changes because of it). passed is done although it may later become
// superseded.
func (s PromotionState) Done() bool {
	switch s {
	case PromotionPending, PromotionDeploying, PromotionTesting:
		return false
	}
	return true
}

// Green reports whether the build is good in the promotion's environment.
func (s PromotionState) Green() bool { return s == PromotionPassed || s == PromotionSuperseded }

// transitions is the whole table: from → the states it may go to.
var transitions = map[PromotionState][]PromotionState{
	PromotionPending:    {PromotionDeploying, PromotionCancelled, PromotionFailed},
	PromotionDeploying:  {PromotionTesting, PromotionPassed, PromotionRolledBack, PromotionFailed},
	PromotionTesting:    {PromotionPassed, PromotionFailed},
	PromotionPassed:     {PromotionSuperseded},
	PromotionFailed:     nil,
	PromotionRolledBack: nil,
	PromotionCancelled:  nil,
	PromotionSuperseded: nil,
}

// ErrTransition means a promotion was asked to move to a state its table
// does not allow from where it is.
var ErrTransition = errors.New("promotion state change not allowed")

// CanAdvance reports whether from → to is in the transition table.
func CanAdvance(from, to PromotionState) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Promotion kinds: what started it.
const (
	KindAutomatic = "automatic" // alpha on a new build, qa when alpha is green
	KindPromote   = "promote"   // a person promoted the build
	KindRollback  = "rollback"  // a person rolled the environment back to this build
)

// Promotion is one build entering one environment.
type Promotion struct {
	ID      int64          `json:"id"`
	BuildID int64          `json:"buildId"`
	Service string         `json:"service"`
	Version string         `json:"version"`
	Env     string         `json:"env"`
	Kind    string         `json:"kind"`
	State   PromotionState `json:"state"`
	By      string         `json:"by,omitempty"`
	// Override is set when an admin promoted past separation of duties.
	Override bool   `json:"override,omitempty"`
	DeployID string `json:"deployID,omitempty"`
	// RunEnv is the environment the instances ran in: Env, or the
	// build's own throwaway environment for alpha.
	RunEnv string `json:"runEnv,omitempty"`
	// Runner names the kplane replica that runs the promotion; when it
	// restarts it ends those it left unfinished (failed, interrupted).
	Runner  string    `json:"runner,omitempty"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Ended   time.Time `json:"ended,omitzero"`
}

// Advance moves p to state to at now, recording why when it failed. It
// refuses (ErrTransition) a change the table does not allow.
func (p *Promotion) Advance(to PromotionState, now time.Time, reason string) error {
	if !CanAdvance(p.State, to) {
		return fmt.Errorf("%w: promotion %d of build %d to %s: %s → %s", ErrTransition, p.ID, p.BuildID, p.Env, p.State, to)
	}
	p.State = to
	p.Updated = now
	if to.Done() && p.Ended.IsZero() {
		p.Ended = now
	}
	if reason != "" {
		p.Error = reason
	}
	return nil
}
