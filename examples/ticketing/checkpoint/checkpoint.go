package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/instrument"
	"github.com/kplane/kplane/ktrace/sdk"
)

// DefaultInventoryURL names inventory the way the registry client resolves
// it.
const DefaultInventoryURL = "http://inventory"

// maxCodeLen bounds a scanned code; real ones are 16 characters.
const maxCodeLen = 64

// maxInventoryBody bounds what checkpoint reads from an inventory answer.
const maxInventoryBody = 64 << 10

// Config configures NewHandler.
type Config struct {
	// Inventory calls inventory. nil means a plain client with a 5 s
	// timeout, useful only with an InventoryURL naming a real address.
	// The client is not modified; checkpoint adds tracing to a copy.
	Inventory *http.Client
	// Tracer makes a client span for every inventory call; nil makes none
	// but still passes the request's trace context on to inventory.
	Tracer *sdk.Tracer
	// InventoryURL is inventory's base URL; "" means DefaultInventoryURL.
	InventoryURL string
	// Logger reports inventory failures; nil discards.
	Logger *slog.Logger
	// Unavailable, when set, tells transport errors that mean "no instance
	// to call" (answered 503) from failed calls (answered 502).
	Unavailable func(error) bool
}

// Handler serves the checkpoint HTTP API.
type Handler struct {
	client      *http.Client
	base        string
	logger      *slog.Logger
	unavailable func(error) bool
}

// NewHandler returns the checkpoint API.
func NewHandler(cfg Config) *Handler {
	var client http.Client
	if cfg.Inventory != nil {
		client = *cfg.Inventory
	} else {
		client = http.Client{Timeout: 5 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	client.Transport = &sdk.Transport{Tracer: cfg.Tracer, Base: client.Transport}
	h := &Handler{
		client:      &client,
		base:        strings.TrimSuffix(cfg.InventoryURL, "/"),
		logger:      cfg.Logger,
		unavailable: cfg.Unavailable,
	}
	if h.base == "" {
		h.base = DefaultInventoryURL
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.unavailable == nil {
		h.unavailable = func(error) bool { return false }
	}
	return h
}

// Register adds the checkpoint routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /checkins", h.checkIn)
}

func (h *Handler) checkIn(w http.ResponseWriter, r *http.Request) {
	var req api.CheckinRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case req.Code == "":
		h.fail(w, r, &api.FieldError{Field: "code", Reason: "must not be empty"})
		return
	case len(req.Code) > maxCodeLen:
		h.fail(w, r, &api.FieldError{Field: "code", Reason: fmt.Sprintf("must be at most %d characters", maxCodeLen)})
		return
	}
	t, err := h.Admit(r.Context(), req.Code)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.Admission{Admitted: true, Ticket: t})
}

// Admit checks a ticket in if it exists and is unused. Errors:
// ErrUnknownTicket, ErrAlreadyUsed, ErrInventoryUnreachable,
// ErrInventoryUnavailable, ErrInventoryFailed.
func (h *Handler) Admit(ctx context.Context, code string) (api.Ticket, error) {
	path := "/tickets/" + url.PathEscape(code)
	// Looking first costs a read but turns most refusals (forged codes,
	// second scans) away without a write, and a read can be retried on
	// another inventory instance.
	t, err := h.call(ctx, http.MethodGet, path, "")
	if err != nil {
		return api.Ticket{}, err
	}
	if t.CheckedIn {
		return t, ErrAlreadyUsed
	}
	// The key makes the check-in replayable: if an instance dies after
	// checking the ticket in but before answering, the retry on another
	// instance is recognised instead of refused as a second entry.
	return h.call(ctx, http.MethodPost, path+"/checkin", randomKey())
}

func (h *Handler) call(ctx context.Context, method, path, idempotencyKey string) (api.Ticket, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, nil)
	if err != nil {
		return api.Ticket{}, fmt.Errorf("%w: %w", ErrInventoryFailed, err)
	}
	if idempotencyKey != "" {
		req.Header.Set(api.IdempotencyKeyHeader, idempotencyKey)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if h.unavailable(err) {
			return api.Ticket{}, fmt.Errorf("%w: %w", ErrInventoryUnavailable, err)
		}
		return api.Ticket{}, fmt.Errorf("%w: %w", ErrInventoryUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInventoryBody))
	if err != nil {
		return api.Ticket{}, fmt.Errorf("%w: read answer: %w", ErrInventoryUnreachable, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var t api.Ticket
		if err := json.Unmarshal(body, &t); err != nil {
			return api.Ticket{}, fmt.Errorf("%w: decode ticket: %w", ErrInventoryFailed, err)
		}
		return t, nil
	case http.StatusNotFound:
		return api.Ticket{}, ErrUnknownTicket
	case http.StatusConflict:
		return api.Ticket{}, ErrAlreadyUsed
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return api.Ticket{}, fmt.Errorf("%w: %s %s answered %s", ErrInventoryUnavailable, method, path, resp.Status)
	default:
		return api.Ticket{}, fmt.Errorf("%w: %s %s answered %s", ErrInventoryFailed, method, path, resp.Status)
	}
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// fail maps an error to its HTTP status: the one place that does.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if api.WriteRequestError(w, err) {
		return
	}
	switch {
	case errors.Is(err, ErrUnknownTicket):
		api.WriteError(w, http.StatusNotFound, api.Error{Error: "unknown ticket", Code: "unknown_ticket"})
	case errors.Is(err, ErrAlreadyUsed):
		api.WriteError(w, http.StatusConflict, api.Error{Error: "ticket already used", Code: "already_checked_in"})
	case r.Context().Err() != nil:
		api.WriteError(w, http.StatusServiceUnavailable, api.Error{Error: "request canceled", Code: api.CodeUnavailable})
	case errors.Is(err, ErrInventoryUnavailable):
		h.logger.Warn("inventory unavailable", "trace_id", instrument.TraceID(r.Context()), "err", err)
		api.WriteError(w, http.StatusServiceUnavailable, api.Error{Error: "ticket validation is unavailable, retry shortly", Code: "inventory_unavailable"})
	case errors.Is(err, ErrInventoryUnreachable):
		h.logger.Warn("inventory unreachable", "trace_id", instrument.TraceID(r.Context()), "err", err)
		api.WriteError(w, http.StatusBadGateway, api.Error{Error: "cannot reach inventory to validate the ticket", Code: "inventory_unreachable"})
	default:
		h.logger.Error("inventory failed", "trace_id", instrument.TraceID(r.Context()), "err", err)
		api.WriteError(w, http.StatusBadGateway, api.Error{Error: "inventory failed to validate the ticket", Code: "inventory_failed"})
	}
}
