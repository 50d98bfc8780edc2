package hawaii

import (
	"encoding/json"
	"time"
)

// Action names what an audit event records.
type Action string

// Actions recorded in the audit log. The pipeline adds its own values with
// the same "noun.verb" shape.
const (
	ActionBuildReported Action = "build.reported"
	ActionTestsReported Action = "tests.reported"
	ActionStageChanged  Action = "stage.changed"
	ActionPromoted      Action = "build.promoted"
	ActionOverride      Action = "promotion.override"
	ActionLocked        Action = "env.locked"
	ActionUnlocked      Action = "env.unlocked"
	ActionRolledBack    Action = "env.rolledback"
	ActionPinned        Action = "env.pinned"
	ActionUnpinned      Action = "env.unpinned"
)

// Event is one entry of the durable audit log: who did what, when, to
// which build or environment, with details as JSON. Events are immutable.
type Event struct {
	// ID is assigned by the store and increases with every event.
	ID int64 `json:"id"`
	// Time is when it happened; the store sets it when zero.
	Time time.Time `json:"time"`
	// Actor is the user, "webhook:<name>" for a signed CI request, or
	// "pipeline" for automation.
	Actor   string `json:"actor"`
	Action  Action `json:"action"`
	Service string `json:"service,omitempty"`
	BuildID int64  `json:"buildId,omitempty"`
	// Stage is the stage or environment concerned, if any.
	Stage Stage `json:"stage,omitempty"`
	// Details is a JSON object; nil is stored as {}.
	Details json.RawMessage `json:"details,omitempty"`
}

// Details marshals v for Event.Details. v is a map or struct of plain
// values, so marshalling cannot fail; if it does the details say so
// rather than losing the event.
func Details(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"detailsError": err.Error()})
	}
	return b
}

func (e Event) validate() error {
	bad := map[string]string{}
	if e.Actor == "" {
		bad["actor"] = "required"
	}
	if e.Action == "" {
		bad["action"] = "required"
	}
	if len(e.Details) > 0 && !json.Valid(e.Details) {
		bad["details"] = "not valid JSON"
	}
	if len(bad) > 0 {
		return &FieldsError{What: "audit event", Fields: bad}
	}
	return nil
}

// AuditQuery selects audit events, newest first. Zero fields match
// everything; Before is an event ID (keyset paging: pass the last ID of the
// previous page).
type AuditQuery struct {
	Service string
	BuildID int64
	Actor   string
	Action  Action
	Before  int64
	Limit   int
}

// normalize returns e as the stores keep it: the time set and in UTC,
// details never empty.
func (e Event) normalize(now func() time.Time) Event {
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	if len(e.Details) == 0 {
		e.Details = json.RawMessage("{}")
	}
	return e
}
