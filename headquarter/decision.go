package headquarter

import (
	"time"
)

// Action is what the rules call for.
type Action string

const (
	Up   Action = "up"
	Down Action = "down"
	Hold Action = "hold"
)

// Guard names what held an action back. GuardNone means nothing did.
type Guard string

const (
	GuardNone Guard = ""
	// GuardCooldown: a previous scale is too recent.
	GuardCooldown Guard = "cooldown"
	// GuardStabilization: the scale-down vote has not held for the whole
	// stabilization window yet.
	GuardStabilization Guard = "stabilization"
	// GuardMax: more instances are called for but the service is at max.
	GuardMax Guard = "max"
	// GuardMin: fewer instances are called for but the service is at min.
	GuardMin Guard = "min"
	// GuardMissingData: metrics that could have decided are missing.
	GuardMissingData Guard = "missing_data"
	// GuardFlap: the scale-down would flip direction too often.
	GuardFlap Guard = "flap"
	// GuardBusy: a previous Scale of the service is still in flight, or the
	// orchestrator said it was busy.
	GuardBusy Guard = "busy"
	// GuardStarting: instances already starting cover the change.
	GuardStarting Guard = "starting"
	// GuardDryRun: the policy is in dry-run mode.
	GuardDryRun Guard = "dry_run"
)

// Vote is one metric's opinion.
type Vote string

const (
	VoteUp       Vote = "up"
	VoteDown     Vote = "down"
	VoteHold     Vote = "hold"
	VoteMissing  Vote = "missing"
	VoteDisabled Vote = "disabled"
)

// Outcome is what the Scaler reported for an executed decision.
type Outcome string

const (
	// OutcomeNone: the decision was not executed (held, or dry run).
	OutcomeNone Outcome = ""
	// OutcomeDone: the instance count changed; a cooldown starts.
	OutcomeDone Outcome = "done"
	// OutcomeNoOp: nothing needed to change; no cooldown starts.
	OutcomeNoOp Outcome = "noop"
	// OutcomeBusy: the orchestrator was busy with the service; nothing
	// changed and the next tick tries again.
	OutcomeBusy Outcome = "busy"
	// OutcomeFailed: the call failed; Decision.Error says why.
	OutcomeFailed Outcome = "failed"
	// OutcomeInProgress: the decision is stored, with its explanation,
	// before the Scaler is called, and replaced by its final outcome when
	// the call returns. A leader that dies in between leaves it so.
	OutcomeInProgress Outcome = "in_progress"
	// OutcomeInterrupted: the leader that started the action stopped
	// leading before it returned, and a later leader marked it so
	// (Decision.Error is InterruptedReason). What the orchestrator did is
	// unknown; the next leader acts on the instance count it observes.
	OutcomeInterrupted Outcome = "interrupted"
)

// InterruptedReason is the Error of an OutcomeInterrupted decision.
const InterruptedReason = "leader changed during the action"

// MetricVote is one metric's input and vote within a decision.
type MetricVote struct {
	Metric Metric `json:"metric"`
	Vote   Vote   `json:"vote"`
	// Value is what was compared: per instance for QPS.
	Value float64 `json:"value,omitempty"`
	High  float64 `json:"high,omitempty"`
	Low   float64 `json:"low,omitempty"`
	// AgeMillis is how old the sample was at the evaluation.
	AgeMillis int64 `json:"ageMillis,omitempty"`
	// Want is the instance count this metric alone calls for:
	// ceil(instances × value / target). Zero when missing or disabled.
	Want int `json:"want,omitempty"`
	// Missing is why the value is missing.
	Missing string `json:"missing,omitempty"`
}

// Decision is one evaluation of one service, with everything needed to
// explain it: inputs and their ages, each metric's vote, the guard that held
// it back, the instance counts and what the orchestrator did.
type Decision struct {
	// ID is assigned by the store; zero until stored.
	ID      int64     `json:"id,omitempty"`
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	Env     string    `json:"env,omitempty"`
	// Action is what the rules call for; Guard, if set, held it back.
	Action Action `json:"action"`
	Guard  Guard  `json:"guard,omitempty"`
	// Reason says in one sentence why, for people.
	Reason string `json:"reason"`
	// From is the registered count, To the count asked for (equal to From
	// when holding). Starting is the count of unregistered instances.
	From     int          `json:"from"`
	To       int          `json:"to"`
	Starting int          `json:"starting,omitempty"`
	Votes    []MetricVote `json:"votes"`
	DryRun   bool         `json:"dryRun,omitempty"`
	// Outcome is OutcomeInProgress while the Scaler runs, then what it
	// returned; Error says why it failed; Finished is when it returned.
	Outcome  Outcome   `json:"outcome,omitempty"`
	Error    string    `json:"error,omitempty"`
	Finished time.Time `json:"finished,omitzero"`
	// Term is the leadership term (the election revision, Fence.Revision)
	// of the Loop that made an executed decision; zero outside an
	// election. A new leader interrupts the in-progress decisions of
	// other terms.
	Term int64 `json:"term,omitempty"`
}

// Executes reports whether the decision should be handed to the Scaler.
func (d Decision) Executes() bool { return d.Action != Hold && d.Guard == GuardNone }

// Noteworthy reports whether the decision is stored: it acts or was held
// back by a guard. Evaluations that do nothing unguarded are not stored.
func (d Decision) Noteworthy() bool { return d.Action != Hold || d.Guard != GuardNone }
