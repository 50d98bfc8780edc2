package inventory

import "errors"

// Errors the store returns; the handler maps each to one HTTP status.
var (
	ErrEventNotFound    = errors.New("event not found")
	ErrOrderNotFound    = errors.New("order not found")
	ErrTicketNotFound   = errors.New("ticket not found")
	ErrSoldOut          = errors.New("event is sold out")
	ErrNotEnoughStock   = errors.New("not enough tickets left")
	ErrAlreadyCheckedIn = errors.New("ticket already checked in")
	// ErrBusy means the database stayed locked by other writers longer
	// than the busy timeout: the request may be retried.
	ErrBusy = errors.New("database busy")
)
