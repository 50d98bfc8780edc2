package inventory

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kplane/kplane/examples/ticketing/api"
)

func newServer(t *testing.T) (*httptest.Server, *Store) {
	t.Helper()
	s := openStore(t, "")
	mustAddEvent(t, s, "gig", 2)
	mux := http.NewServeMux()
	NewHandler(HandlerConfig{Store: s}).Register(mux)
	srv := httptest.NewServer(api.JSONErrors(mux))
	t.Cleanup(srv.Close)
	return srv, s
}

// do sends a request and decodes the JSON answer into out (if not nil).
func do(t *testing.T, method, url, body string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, body %s", method, url, ct, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return resp
}

func TestHTTPErrors(t *testing.T) {
	srv, _ := newServer(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"unknown event", "GET", "/events/nope", "", 404, "event_not_found", ""},
		{"order for unknown event", "POST", "/events/nope/orders", `{"quantity":1,"buyer":"ann"}`, 404, "event_not_found", ""},
		{"bad quantity", "POST", "/events/gig/orders", `{"quantity":0,"buyer":"ann"}`, 400, api.CodeBadRequest, "quantity"},
		{"quantity of the wrong type", "POST", "/events/gig/orders", `{"quantity":"2","buyer":"ann"}`, 400, api.CodeBadRequest, "quantity"},
		{"missing buyer", "POST", "/events/gig/orders", `{"quantity":1}`, 400, api.CodeBadRequest, "buyer"},
		{"unknown field", "POST", "/events/gig/orders", `{"quantity":1,"buyer":"ann","vip":true}`, 400, api.CodeBadRequest, ""},
		{"not JSON", "POST", "/events/gig/orders", `quantity=1`, 400, api.CodeBadRequest, ""},
		{"empty body", "POST", "/events/gig/orders", ``, 400, api.CodeBadRequest, ""},
		{"too large", "POST", "/events/gig/orders", `{"quantity":1,"buyer":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`, 413, api.CodeTooLarge, ""},
		{"more than the stock", "POST", "/events/gig/orders", `{"quantity":3,"buyer":"ann"}`, 409, "not_enough_stock", ""},
		{"unknown ticket", "GET", "/tickets/NOPE", "", 404, "ticket_not_found", ""},
		{"check in unknown ticket", "POST", "/tickets/NOPE/checkin", "", 404, "ticket_not_found", ""},
		{"no such route", "GET", "/nope", "", 404, api.CodeNotFound, ""},
		{"wrong method", "DELETE", "/events", "", 405, api.CodeMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e api.Error
			resp := do(t, tt.method, srv.URL+tt.path, tt.body, &e)
			if resp.StatusCode != tt.status || e.Code != tt.code || e.Field != tt.field || e.Error == "" {
				t.Errorf("got %d %+v, want %d code %q field %q", resp.StatusCode, e, tt.status, tt.code, tt.field)
			}
		})
	}
}

func TestHTTPBuyAndCheckIn(t *testing.T) {
	srv, store := newServer(t)

	var events []api.Event
	if resp := do(t, "GET", srv.URL+"/events", "", &events); resp.StatusCode != 200 || len(events) != 1 || events[0].Stock != 2 {
		t.Fatalf("GET /events = %d %+v", resp.StatusCode, events)
	}
	var order api.Order
	resp := do(t, "POST", srv.URL+"/events/gig/orders", `{"quantity":2,"buyer":"ann"}`, &order)
	if resp.StatusCode != 201 || len(order.Tickets) != 2 {
		t.Fatalf("buy = %d %+v", resp.StatusCode, order)
	}
	if stored, err := store.Order(t.Context(), order.ID); err != nil || len(stored.Tickets) != 2 {
		t.Errorf("stored order = %+v, %v", stored, err)
	}
	var e api.Error
	if resp := do(t, "POST", srv.URL+"/events/gig/orders", `{"quantity":1,"buyer":"bob"}`, &e); resp.StatusCode != 409 || e.Code != "sold_out" {
		t.Errorf("buy when sold out = %d %+v", resp.StatusCode, e)
	}

	code := order.Tickets[0]
	var tk api.Ticket
	if resp := do(t, "GET", srv.URL+"/tickets/"+code, "", &tk); resp.StatusCode != 200 || tk.CheckedIn || tk.EventID != "gig" {
		t.Errorf("GET ticket = %d %+v", resp.StatusCode, tk)
	}
	if resp := do(t, "POST", srv.URL+"/tickets/"+code+"/checkin", "", &tk); resp.StatusCode != 200 || !tk.CheckedIn {
		t.Errorf("check in = %d %+v", resp.StatusCode, tk)
	}
	if resp := do(t, "POST", srv.URL+"/tickets/"+code+"/checkin", "", &e); resp.StatusCode != 409 || e.Code != "already_checked_in" {
		t.Errorf("second check in = %d %+v", resp.StatusCode, e)
	}
}
