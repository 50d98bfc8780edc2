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
	// ErrTooLarge means a request holds more spans or other elements than
	// one request may; the message names the limit. Nothing was accepted:
	// the client should send smaller batches. web maps it to 413.
	ErrTooLarge = errors.New("request too large")
	// ErrUnavailable means the store cannot be reached; nothing was
	// accepted. web maps it to 503 with Retry-After.
	ErrUnavailable = errors.New("store unavailable")
)
