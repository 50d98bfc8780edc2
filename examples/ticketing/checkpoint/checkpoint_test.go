package checkpoint

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/instrument"
	"github.com/kplane/kplane/examples/ticketing/inventory"
)

// inventoryServer is a real inventory on an in-memory store, recording the
// traceparent headers it receives.
type inventoryServer struct {
	*httptest.Server
	store *inventory.Store

	mu          sync.Mutex
	traceparent []string
}

func newInventory(t *testing.T) *inventoryServer {
	t.Helper()
	store, err := inventory.Open(t.Context(), inventory.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.AddEvent(t.Context(), api.Event{ID: "gig", Name: "Gig", Capacity: 10}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	inventory.NewHandler(inventory.HandlerConfig{Store: store}).Register(mux)
	inv := &inventoryServer{store: store}
	inv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv.mu.Lock()
		inv.traceparent = append(inv.traceparent, r.Header.Get(instrument.TraceparentHeader))
		inv.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(inv.Close)
	return inv
}

func (inv *inventoryServer) buy(t *testing.T) string {
	t.Helper()
	order, err := inv.store.Buy(t.Context(), "gig", api.OrderRequest{Quantity: 1, Buyer: "ann"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return order.Tickets[0]
}

func newCheckpoint(t *testing.T, inventoryURL string) *httptest.Server {
	t.Helper()
	mw, err := instrument.New(instrument.Config{Service: "checkpoint"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	NewHandler(Config{InventoryURL: inventoryURL}).Register(mux)
	srv := httptest.NewServer(mw.Wrap(api.JSONErrors(mux)))
	t.Cleanup(srv.Close)
	return srv
}

func checkIn(t *testing.T, srv *httptest.Server, body string, header http.Header) (int, api.Admission, api.Error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/checkins", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	var adm api.Admission
	var e api.Error
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(raw, &adm)
	} else {
		err = json.Unmarshal(raw, &e)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return resp.StatusCode, adm, e
}

func TestCheckIn(t *testing.T) {
	inv := newInventory(t)
	srv := newCheckpoint(t, inv.URL)
	code := inv.buy(t)

	status, adm, _ := checkIn(t, srv, `{"code":"`+code+`"}`, nil)
	if status != 200 || !adm.Admitted || adm.Ticket.Code != code || !adm.Ticket.CheckedIn {
		t.Fatalf("first scan = %d %+v, want admitted", status, adm)
	}
	if tk, err := inv.store.Ticket(t.Context(), code); err != nil || !tk.CheckedIn {
		t.Errorf("inventory has %+v, %v; want checked in", tk, err)
	}
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"second scan", `{"code":"` + code + `"}`, 409, "already_checked_in"},
		{"unknown code", `{"code":"FORGED"}`, 404, "unknown_ticket"},
		{"code with a slash", `{"code":"../events"}`, 404, "unknown_ticket"},
		{"empty code", `{"code":""}`, 400, api.CodeBadRequest},
		{"long code", `{"code":"` + strings.Repeat("A", 65) + `"}`, 400, api.CodeBadRequest},
		{"not JSON", `code`, 400, api.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, e := checkIn(t, srv, tt.body, nil)
			if status != tt.status || e.Code != tt.code {
				t.Errorf("got %d %+v, want %d %q", status, e, tt.status, tt.code)
			}
		})
	}
}

func TestCheckInPassesTraceOn(t *testing.T) {
	inv := newInventory(t)
	srv := newCheckpoint(t, inv.URL)
	code := inv.buy(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	checkIn(t, srv, `{"code":"`+code+`"}`, http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}})

	inv.mu.Lock()
	defer inv.mu.Unlock()
	if len(inv.traceparent) != 2 {
		t.Fatalf("inventory got %d calls, want a lookup and a check-in", len(inv.traceparent))
	}
	for _, tp := range inv.traceparent {
		if !strings.HasPrefix(tp, "00-"+traceID+"-") {
			t.Errorf("inventory got traceparent %q, want trace %s", tp, traceID)
		}
	}
}

func TestInventoryDown(t *testing.T) {
	// A port nothing listens on: bind one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := newCheckpoint(t, "http://"+addr)
	status, _, e := checkIn(t, srv, `{"code":"ABC"}`, nil)
	if status != http.StatusBadGateway || e.Code != "inventory_unreachable" {
		t.Errorf("got %d %+v, want 502 inventory_unreachable", status, e)
	}
}

func TestInventoryErrors(t *testing.T) {
	for _, tt := range []struct {
		name     string
		upstream int
		status   int
		code     string
	}{
		{"busy", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "inventory_unavailable"},
		{"broken", http.StatusInternalServerError, http.StatusBadGateway, "inventory_failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				api.WriteError(w, tt.upstream, api.Error{Error: "no", Code: "no"})
			}))
			defer inv.Close()
			srv := newCheckpoint(t, inv.URL)
			status, _, e := checkIn(t, srv, `{"code":"ABC"}`, nil)
			if status != tt.status || e.Code != tt.code {
				t.Errorf("got %d %+v, want %d %q", status, e, tt.status, tt.code)
			}
		})
	}
}
