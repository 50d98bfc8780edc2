package inventory

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/instrument"
)

// HandlerConfig configures NewHandler.
type HandlerConfig struct {
	Store *Store
	// Logger reports server-side failures; nil discards.
	Logger *slog.Logger
	// Now stamps orders and check-ins; nil means time.Now.
	Now func() time.Time
}

// Handler serves the inventory HTTP API.
type Handler struct {
	store  *Store
	logger *slog.Logger
	now    func() time.Time
}

// NewHandler returns the inventory API over cfg.Store.
func NewHandler(cfg HandlerConfig) *Handler {
	h := &Handler{store: cfg.Store, logger: cfg.Logger, now: cfg.Now}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// Register adds the inventory routes to mux. There is deliberately no
// route to read an order back: order IDs are sequential, and an order
// holds ticket codes, which are what gets a person through the gate.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /events", h.listEvents)
	mux.HandleFunc("GET /events/{id}", h.getEvent)
	mux.HandleFunc("POST /events/{id}/orders", h.createOrder)
	mux.HandleFunc("GET /tickets/{code}", h.getTicket)
	mux.HandleFunc("POST /tickets/{code}/checkin", h.checkIn)
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) {
	events, err := h.store.Events(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, events)
}

func (h *Handler) getEvent(w http.ResponseWriter, r *http.Request) {
	e, err := h.store.Event(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, e)
}

func (h *Handler) createOrder(w http.ResponseWriter, r *http.Request) {
	var req api.OrderRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	order, err := h.store.Buy(r.Context(), r.PathValue("id"), req, h.now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, order)
}

func (h *Handler) getTicket(w http.ResponseWriter, r *http.Request) {
	t, err := h.store.Ticket(r.Context(), r.PathValue("code"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, t)
}

func (h *Handler) checkIn(w http.ResponseWriter, r *http.Request) {
	t, err := h.store.CheckIn(r.Context(), r.PathValue("code"), r.Header.Get(api.IdempotencyKeyHeader), h.now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, t)
}

// fail maps an error to its HTTP status: the one place that does.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if api.WriteRequestError(w, err) {
		return
	}
	switch {
	case errors.Is(err, ErrEventNotFound):
		api.WriteError(w, http.StatusNotFound, api.Error{Error: "event not found", Code: "event_not_found"})
	case errors.Is(err, ErrTicketNotFound):
		api.WriteError(w, http.StatusNotFound, api.Error{Error: "ticket not found", Code: "ticket_not_found"})
	case errors.Is(err, ErrSoldOut):
		api.WriteError(w, http.StatusConflict, api.Error{Error: "event is sold out", Code: "sold_out"})
	case errors.Is(err, ErrNotEnoughStock):
		api.WriteError(w, http.StatusConflict, api.Error{Error: err.Error(), Code: "not_enough_stock"})
	case errors.Is(err, ErrAlreadyCheckedIn):
		api.WriteError(w, http.StatusConflict, api.Error{Error: "ticket already checked in", Code: "already_checked_in"})
	case errors.Is(err, ErrBusy):
		h.logger.Warn("database busy", "trace_id", instrument.TraceID(r.Context()), "route", r.Pattern, "err", err)
		api.WriteError(w, http.StatusServiceUnavailable, api.Error{Error: "inventory is busy, retry shortly", Code: api.CodeUnavailable})
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer and it is not a
		// server fault worth logging.
		api.WriteError(w, http.StatusServiceUnavailable, api.Error{Error: "request canceled", Code: api.CodeUnavailable})
	default:
		h.logger.Error("request failed", "trace_id", instrument.TraceID(r.Context()), "route", r.Pattern, "err", err)
		api.WriteError(w, http.StatusInternalServerError, api.Error{Error: "internal error", Code: api.CodeInternal})
	}
}
