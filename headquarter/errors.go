package headquarter

import "errors"

var (
	// ErrInvalidPolicy means a policy fails Validate; the wrapped message
	// names the field and what to change.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrNotFound means no policy is stored for the service.
	ErrNotFound = errors.New("not found")
	// ErrNotLeader means this process does not hold the headquarter
	// leadership, or no longer does: a fenced call is refused so that a
	// deposed leader cannot act.
	ErrNotLeader = errors.New("not the headquarter leader")
	// ErrBadSamples means a replay sample file is malformed; the wrapped
	// message names the line.
	ErrBadSamples = errors.New("bad samples")
)
