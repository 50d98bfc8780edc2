package inventory

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing/api"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), StoreConfig{Path: path})
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAddEvent(t *testing.T, s *Store, id string, capacity int) {
	t.Helper()
	if err := s.AddEvent(t.Context(), api.Event{ID: id, Name: id, Venue: "Hall", StartsAt: now, Capacity: capacity}); err != nil {
		t.Fatalf("AddEvent(%s): %v", id, err)
	}
}

func TestBuyOutcomes(t *testing.T) {
	for _, path := range []string{"", "file"} {
		name := map[string]string{"": "memory", "file": "file"}[path]
		t.Run(name, func(t *testing.T) {
			if path != "" {
				path = filepath.Join(t.TempDir(), "inventory.db")
			}
			s := openStore(t, path)
			mustAddEvent(t, s, "gig", 3)

			tests := []struct {
				name    string
				event   string
				req     api.OrderRequest
				wantErr error
				field   string
				stock   int
			}{
				{"zero quantity", "gig", api.OrderRequest{Quantity: 0, Buyer: "ann"}, nil, "quantity", 3},
				{"too many per order", "gig", api.OrderRequest{Quantity: MaxPerOrder + 1, Buyer: "ann"}, nil, "quantity", 3},
				{"no buyer", "gig", api.OrderRequest{Quantity: 1, Buyer: "  "}, nil, "buyer", 3},
				{"unknown event", "nope", api.OrderRequest{Quantity: 1, Buyer: "ann"}, ErrEventNotFound, "", 3},
				{"buy two", "gig", api.OrderRequest{Quantity: 2, Buyer: "ann"}, nil, "", 1},
				{"not enough left", "gig", api.OrderRequest{Quantity: 2, Buyer: "bob"}, ErrNotEnoughStock, "", 1},
				{"buy the last", "gig", api.OrderRequest{Quantity: 1, Buyer: "bob"}, nil, "", 0},
				{"sold out", "gig", api.OrderRequest{Quantity: 1, Buyer: "cat"}, ErrSoldOut, "", 0},
			}
			for _, tt := range tests {
				order, err := s.Buy(t.Context(), tt.event, tt.req, now)
				var fe *api.FieldError
				switch {
				case tt.field != "":
					if !errors.As(err, &fe) || fe.Field != tt.field {
						t.Errorf("%s: err = %v, want a FieldError on %q", tt.name, err, tt.field)
					}
				case tt.wantErr != nil:
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
					}
				case err != nil:
					t.Errorf("%s: %v", tt.name, err)
				default:
					if len(order.Tickets) != tt.req.Quantity || order.ID == 0 {
						t.Errorf("%s: order = %+v, want %d tickets and an id", tt.name, order, tt.req.Quantity)
					}
					got, err := s.Order(t.Context(), order.ID)
					if err != nil || len(got.Tickets) != tt.req.Quantity || got.Buyer != tt.req.Buyer {
						t.Errorf("%s: stored order = %+v, %v", tt.name, got, err)
					}
				}
				e, err := s.Event(t.Context(), "gig")
				if err != nil || e.Stock != tt.stock {
					t.Errorf("%s: stock = %d (%v), want %d", tt.name, e.Stock, err, tt.stock)
				}
			}
		})
	}
}

func TestCheckIn(t *testing.T) {
	s := openStore(t, "")
	mustAddEvent(t, s, "gig", 10)
	order, err := s.Buy(t.Context(), "gig", api.OrderRequest{Quantity: 2, Buyer: "ann"}, now)
	if err != nil {
		t.Fatal(err)
	}
	first, second := order.Tickets[0], order.Tickets[1]
	ctx := t.Context()

	got, err := s.CheckIn(ctx, first, "", now)
	if err != nil || !got.CheckedIn || got.CheckedInAt == nil || !got.CheckedInAt.Equal(now) || got.OrderID != order.ID {
		t.Fatalf("first check-in = %+v, %v", got, err)
	}
	if _, err := s.CheckIn(ctx, first, "", now); !errors.Is(err, ErrAlreadyCheckedIn) {
		t.Errorf("second check-in: err = %v, want ErrAlreadyCheckedIn", err)
	}
	if _, err := s.CheckIn(ctx, "NOSUCHCODE", "", now); !errors.Is(err, ErrTicketNotFound) {
		t.Errorf("unknown code: err = %v, want ErrTicketNotFound", err)
	}

	// A retried check-in carrying the key of the one that succeeded is
	// recognised; another key is a second entry.
	if _, err := s.CheckIn(ctx, second, "key-1", now); err != nil {
		t.Fatalf("check-in with key: %v", err)
	}
	if _, err := s.CheckIn(ctx, second, "key-1", now.Add(time.Minute)); err != nil {
		t.Errorf("replay with the same key: %v, want success", err)
	}
	if _, err := s.CheckIn(ctx, second, "key-2", now); !errors.Is(err, ErrAlreadyCheckedIn) {
		t.Errorf("other key: err = %v, want ErrAlreadyCheckedIn", err)
	}
	if tk, err := s.Ticket(ctx, second); err != nil || !tk.CheckedInAt.Equal(now) {
		t.Errorf("ticket after replay = %+v, %v; want the first check-in time kept", tk, err)
	}
}

// Instances starting together on a new file must neither fail nor seed
// twice.
func TestOpenConcurrentlySeedsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := Open(context.WithoutCancel(t.Context()), StoreConfig{Path: path, Seed: true})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s := openStore(t, path)
	events, err := s.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := len(DemoEvents(now)); len(events) != want {
		t.Fatalf("%d events after concurrent seeding, want %d", len(events), want)
	}
	flash, err := s.Event(t.Context(), FlashSaleEventID)
	if err != nil || flash.Stock != flash.Capacity {
		t.Errorf("flash sale = %+v, %v", flash, err)
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	s, err := Open(t.Context(), StoreConfig{Path: path, Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	order, err := s.Buy(t.Context(), FlashSaleEventID, api.OrderRequest{Quantity: 2, Buyer: "ann"}, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, path)
	e, err := s.Event(t.Context(), FlashSaleEventID)
	if err != nil || e.Stock != e.Capacity-2 {
		t.Errorf("after reopen: %+v, %v; want seeding not repeated and stock %d", e, err, e.Capacity-2)
	}
	if _, err := s.Order(t.Context(), order.ID); err != nil {
		t.Errorf("order lost across reopen: %v", err)
	}
}

func TestOpenRejectsURIPath(t *testing.T) {
	if _, err := Open(t.Context(), StoreConfig{Path: "inv.db?mode=ro"}); err == nil {
		t.Fatal("Open accepted a path with '?'")
	}
}
