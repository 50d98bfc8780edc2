package headquarter

import "errors"

var (
	// ErrInvalidPolicy means a policy fails Validate; the wrapped message
	// names the field and what to change.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrNotFound means no policy is stored for the service, or no
	// decision has the ID.
	ErrNotFound = errors.New("not found")
	// ErrEnded means a decision is no longer in progress: its final
	// outcome was stored already, or a newer leader interrupted it.
	ErrEnded = errors.New("decision already ended")
	// ErrNotLeader means this process does not hold the headquarter
	// leadership, or no longer does: a fenced call is refused so that a
	// deposed leader cannot act.
	ErrNotLeader = errors.New("not the headquarter leader")
	// ErrBadSamples means a replay sample file is malformed; the wrapped
	// message names the line.
	ErrBadSamples = errors.New("bad samples")
)
