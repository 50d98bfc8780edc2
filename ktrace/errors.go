package ktrace

import "errors"

var (
	// ErrInvalid means a payload or query is malformed; the message names
	// the problem. web maps it to 400.
	ErrInvalid = errors.New("invalid")
	// ErrOverloaded means the write path is saturated: the batch was NOT
	// accepted and may be retried later. web maps it to 429/503 with
	// Retry-After.
	ErrOverloaded = errors.New("overloaded")
	// ErrUnavailable means the store cannot be reached; nothing was
	// accepted. web maps it to 503 with Retry-After.
	ErrUnavailable = errors.New("store unavailable")
)
