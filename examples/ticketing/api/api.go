package api

import "time"

// Event is something to buy tickets for. Stock is the number of tickets
// still for sale.
type Event struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Venue    string    `json:"venue"`
	StartsAt time.Time `json:"starts_at"`
	Price    int64     `json:"price_cents"`
	Capacity int       `json:"capacity"`
	Stock    int       `json:"stock"`
}

// OrderRequest is the body of POST /events/{id}/orders.
type OrderRequest struct {
	Quantity int    `json:"quantity"`
	Buyer    string `json:"buyer"`
}

// Order is a completed purchase and the tickets it issued.
type Order struct {
	ID        int64     `json:"id"`
	EventID   string    `json:"event_id"`
	Buyer     string    `json:"buyer"`
	Quantity  int       `json:"quantity"`
	Tickets   []string  `json:"tickets"`
	CreatedAt time.Time `json:"created_at"`
}

// Ticket is one admission, identified by the code printed in its QR code.
type Ticket struct {
	Code        string     `json:"code"`
	EventID     string     `json:"event_id"`
	OrderID     int64      `json:"order_id"`
	CheckedIn   bool       `json:"checked_in"`
	CheckedInAt *time.Time `json:"checked_in_at,omitempty"`
}

// CheckinRequest is the body of checkpoint's POST /checkins.
type CheckinRequest struct {
	Code string `json:"code"`
}

// Admission is checkpoint's answer when a ticket lets its holder in.
type Admission struct {
	Admitted bool   `json:"admitted"`
	Ticket   Ticket `json:"ticket"`
}

// IdempotencyKeyHeader names the header that makes POST
// /tickets/{code}/checkin safe to retry: a check-in repeated with the key
// that checked the ticket in succeeds again instead of answering 409. The
// name is the one net/http and the registry transport treat as marking a
// request replayable.
const IdempotencyKeyHeader = "Idempotency-Key"

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`           // for people
	Code  string `json:"code"`            // for programs: stable, snake_case
	Field string `json:"field,omitempty"` // the offending request field, on 400
}

// Error codes shared by the services.
const (
	CodeBadRequest       = "bad_request"
	CodeTooLarge         = "request_too_large"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
)
