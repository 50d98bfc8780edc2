package checkpoint

import "errors"

// Errors of an admission; the handler maps each to one HTTP status.
var (
	ErrUnknownTicket = errors.New("unknown ticket")
	ErrAlreadyUsed   = errors.New("ticket already used")
	// ErrInventoryUnreachable: no inventory instance answered.
	ErrInventoryUnreachable = errors.New("inventory unreachable")
	// ErrInventoryUnavailable: inventory answered that it cannot serve now
	// (busy, or no instance registered); retrying later may succeed.
	ErrInventoryUnavailable = errors.New("inventory unavailable")
	// ErrInventoryFailed: inventory answered with an error or nonsense.
	ErrInventoryFailed = errors.New("inventory failed")
)
