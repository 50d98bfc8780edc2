package inventory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"time"

	"modernc.org/sqlite"

	"github.com/kplane/kplane/examples/ticketing/api"
)

// MaxPerOrder is how many tickets one order may buy, as ticket sellers cap
// flash-sale orders to spread them over more buyers.
const MaxPerOrder = 8

// maxBuyerLen bounds the buyer name stored with an order.
const maxBuyerLen = 100

// DefaultBusyTimeout is how long a write waits for other writers (other
// inventory instances on the same file) before giving up with ErrBusy.
const DefaultBusyTimeout = 10 * time.Second

// StoreConfig configures Open.
type StoreConfig struct {
	// Path is the SQLite database file, shared by every inventory instance
	// that should sell from the same stock. "" means a private in-memory
	// database that disappears with the store.
	Path string
	// BusyTimeout: 0 means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Seed adds the demo events (DemoEvents) when the database is new.
	Seed bool
}

// Store is the inventory state. It is safe for concurrent use, also by
// several processes on the same file.
type Store struct {
	// writes has a single connection: writers of this process queue in
	// database/sql instead of polling SQLite's lock, and only one connection
	// per process competes with other processes for the file's write lock.
	writes *sql.DB
	// reads has several connections reading WAL snapshots concurrently. For
	// an in-memory database it is writes: a private memory database lives
	// in one connection.
	reads *sql.DB
}

// Open opens (creating and migrating if needed) the inventory database.
func Open(ctx context.Context, cfg StoreConfig) (*Store, error) {
	if strings.ContainsAny(cfg.Path, "?#") {
		return nil, fmt.Errorf("inventory: database path %q must not contain '?' or '#'", cfg.Path)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	params := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", busy.Milliseconds())
	s := &Store{}
	var err error
	if cfg.Path == "" {
		s.writes, err = sql.Open("sqlite", ":memory:?_txlock=immediate&"+params)
		if err != nil {
			return nil, fmt.Errorf("inventory: open database: %w", err)
		}
		keepOneConnection(s.writes)
		s.reads = s.writes
	} else {
		// IMMEDIATE transactions take the write lock up front, so a
		// purchase never has to upgrade a read lock, which in WAL mode
		// fails at once instead of waiting for the busy timeout.
		// WAL lets the read pool and other processes read while one
		// connection writes; NORMAL sync is durable against process crashes,
		// which is what a demo on one machine needs.
		file := cfg.Path + "?" + params
		s.writes, err = sql.Open("sqlite", file+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("inventory: open database: %w", err)
		}
		keepOneConnection(s.writes)
		s.reads, err = sql.Open("sqlite", file+"&_query_only=1")
		if err != nil {
			s.writes.Close()
			return nil, fmt.Errorf("inventory: open database: %w", err)
		}
		s.reads.SetMaxOpenConns(4)
	}
	if err := s.migrateRetrying(ctx, cfg.Seed, busy); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// migrateRetrying migrates, retrying on ErrBusy until the busy timeout:
// while several instances open a new file and switch it to WAL, SQLite
// can refuse a lock at once instead of waiting in its busy handler.
// Opening is rare, so a retry costs nothing.
func (s *Store) migrateRetrying(ctx context.Context, seed bool, busy time.Duration) error {
	deadline := time.Now().Add(busy)
	for {
		err := s.migrate(ctx, seed, time.Now())
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("inventory: migrate: %w", context.Cause(ctx))
		case <-time.After(time.Duration(10+mathrand.IntN(40)) * time.Millisecond):
		}
	}
}

func keepOneConnection(db *sql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}

// Close releases the database.
func (s *Store) Close() error {
	err := s.writes.Close()
	if s.reads != s.writes {
		err = errors.Join(err, s.reads.Close())
	}
	return err
}

// migrations are applied in order, each once, tracked in PRAGMA
// user_version. Never edit one that has shipped; append.
var migrations = []string{
	`CREATE TABLE events (
		id          TEXT PRIMARY KEY,
		name        TEXT NOT NULL,
		venue       TEXT NOT NULL,
		starts_at   INTEGER NOT NULL,
		price_cents INTEGER NOT NULL,
		capacity    INTEGER NOT NULL,
		stock       INTEGER NOT NULL CHECK (stock >= 0 AND stock <= capacity)
	);
	CREATE TABLE orders (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		event_id   TEXT NOT NULL REFERENCES events (id),
		buyer      TEXT NOT NULL,
		quantity   INTEGER NOT NULL CHECK (quantity > 0),
		created_at INTEGER NOT NULL
	);
	CREATE INDEX orders_event ON orders (event_id);
	CREATE TABLE tickets (
		code          TEXT PRIMARY KEY,
		order_id      INTEGER NOT NULL REFERENCES orders (id),
		event_id      TEXT NOT NULL REFERENCES events (id),
		checked_in_at INTEGER,
		checkin_key   TEXT
	);
	CREATE INDEX tickets_order ON tickets (order_id);`,
}

func (s *Store) migrate(ctx context.Context, seed bool, now time.Time) error {
	// One IMMEDIATE transaction: instances starting together on a new file
	// take turns, and the second finds the work done.
	tx, err := s.writes.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inventory: migrate: %w", classify(err))
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("inventory: migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("inventory: database schema version %d is newer than this binary knows (%d)", version, len(migrations))
	}
	fresh := version == 0
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("inventory: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return fmt.Errorf("inventory: migrate: %w", err)
	}
	if seed && fresh {
		for _, e := range DemoEvents(now) {
			if err := addEvent(ctx, tx, e); err != nil {
				return fmt.Errorf("inventory: seed: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inventory: migrate: %w", classify(err))
	}
	return nil
}

// AddEvent creates an event whose whole capacity is for sale.
func (s *Store) AddEvent(ctx context.Context, e api.Event) error {
	tx, err := s.writes.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	defer tx.Rollback()
	if err := addEvent(ctx, tx, e); err != nil {
		return err
	}
	return classify(tx.Commit())
}

func addEvent(ctx context.Context, tx *sql.Tx, e api.Event) error {
	switch {
	case e.ID == "" || strings.ContainsAny(e.ID, "/ ?#"):
		return &api.FieldError{Field: "id", Reason: "must be non-empty without '/', '?', '#' or spaces"}
	case e.Name == "":
		return &api.FieldError{Field: "name", Reason: "must not be empty"}
	case e.Capacity <= 0:
		return &api.FieldError{Field: "capacity", Reason: "must be positive"}
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO events (id, name, venue, starts_at, price_cents, capacity, stock) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Name, e.Venue, e.StartsAt.UnixNano(), e.Price, e.Capacity, e.Capacity)
	if err != nil {
		return fmt.Errorf("add event %q: %w", e.ID, classify(err))
	}
	return nil
}

// Events lists every event, soonest first.
func (s *Store) Events(ctx context.Context) ([]api.Event, error) {
	rows, err := s.reads.QueryContext(ctx,
		`SELECT id, name, venue, starts_at, price_cents, capacity, stock FROM events ORDER BY starts_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", classify(err))
	}
	defer rows.Close()
	events := []api.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", classify(err))
	}
	return events, nil
}

// Event returns one event, or ErrEventNotFound.
func (s *Store) Event(ctx context.Context, id string) (api.Event, error) {
	row := s.reads.QueryRowContext(ctx,
		`SELECT id, name, venue, starts_at, price_cents, capacity, stock FROM events WHERE id = ?`, id)
	e, err := scanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Event{}, ErrEventNotFound
	}
	if err != nil {
		return api.Event{}, fmt.Errorf("get event %q: %w", id, classify(err))
	}
	return e, nil
}

func scanEvent(row interface{ Scan(...any) error }) (api.Event, error) {
	var e api.Event
	var startsAt int64
	err := row.Scan(&e.ID, &e.Name, &e.Venue, &startsAt, &e.Price, &e.Capacity, &e.Stock)
	e.StartsAt = time.Unix(0, startsAt).UTC()
	return e, err
}

// ValidateOrder reports the first bad field of an order request as an
// *api.FieldError.
func ValidateOrder(req api.OrderRequest) error {
	switch {
	case req.Quantity < 1 || req.Quantity > MaxPerOrder:
		return &api.FieldError{Field: "quantity", Reason: fmt.Sprintf("must be between 1 and %d", MaxPerOrder)}
	case strings.TrimSpace(req.Buyer) == "":
		return &api.FieldError{Field: "buyer", Reason: "must not be empty"}
	case len(req.Buyer) > maxBuyerLen:
		return &api.FieldError{Field: "buyer", Reason: fmt.Sprintf("must be at most %d bytes", maxBuyerLen)}
	}
	return nil
}

// Buy takes req.Quantity tickets of an event out of stock and records the
// order with its tickets, all in one transaction: either the buyer gets an
// order whose tickets are stored, or stock is untouched. Errors:
// *api.FieldError, ErrEventNotFound, ErrSoldOut, ErrNotEnoughStock, ErrBusy.
func (s *Store) Buy(ctx context.Context, eventID string, req api.OrderRequest, now time.Time) (api.Order, error) {
	if err := ValidateOrder(req); err != nil {
		return api.Order{}, err
	}
	tx, err := s.writes.BeginTx(ctx, nil)
	if err != nil {
		return api.Order{}, fmt.Errorf("buy: %w", classify(err))
	}
	defer tx.Rollback()

	// The WHERE clause is the oversell guard: concurrent buyers serialize
	// on the write lock and each sees the stock the previous one left.
	res, err := tx.ExecContext(ctx,
		`UPDATE events SET stock = stock - ? WHERE id = ? AND stock >= ?`, req.Quantity, eventID, req.Quantity)
	if err != nil {
		return api.Order{}, fmt.Errorf("buy: take stock: %w", classify(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return api.Order{}, fmt.Errorf("buy: take stock: %w", err)
	} else if n == 0 {
		var stock int
		err := tx.QueryRowContext(ctx, `SELECT stock FROM events WHERE id = ?`, eventID).Scan(&stock)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return api.Order{}, ErrEventNotFound
		case err != nil:
			return api.Order{}, fmt.Errorf("buy: read stock: %w", classify(err))
		case stock == 0:
			return api.Order{}, ErrSoldOut
		default:
			return api.Order{}, fmt.Errorf("%w: %d left", ErrNotEnoughStock, stock)
		}
	}

	order := api.Order{EventID: eventID, Buyer: req.Buyer, Quantity: req.Quantity, CreatedAt: now.UTC()}
	err = tx.QueryRowContext(ctx,
		`INSERT INTO orders (event_id, buyer, quantity, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
		eventID, req.Buyer, req.Quantity, now.UnixNano()).Scan(&order.ID)
	if err != nil {
		return api.Order{}, fmt.Errorf("buy: insert order: %w", classify(err))
	}
	for range req.Quantity {
		code := newTicketCode()
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO tickets (code, order_id, event_id) VALUES (?, ?, ?)`, code, order.ID, eventID); err != nil {
			return api.Order{}, fmt.Errorf("buy: insert ticket: %w", classify(err))
		}
		order.Tickets = append(order.Tickets, code)
	}
	if err := tx.Commit(); err != nil {
		return api.Order{}, fmt.Errorf("buy: commit: %w", classify(err))
	}
	return order, nil
}

// Order returns one order with its tickets, or ErrOrderNotFound.
func (s *Store) Order(ctx context.Context, id int64) (api.Order, error) {
	orders, err := s.orders(ctx, `WHERE o.id = ?`, id)
	if err != nil {
		return api.Order{}, fmt.Errorf("get order %d: %w", id, err)
	}
	if len(orders) == 0 {
		return api.Order{}, ErrOrderNotFound
	}
	return orders[0], nil
}

// Orders lists the orders of an event with their tickets, oldest first.
func (s *Store) Orders(ctx context.Context, eventID string) ([]api.Order, error) {
	orders, err := s.orders(ctx, `WHERE o.event_id = ?`, eventID)
	if err != nil {
		return nil, fmt.Errorf("list orders of %q: %w", eventID, err)
	}
	return orders, nil
}

func (s *Store) orders(ctx context.Context, where string, arg any) ([]api.Order, error) {
	rows, err := s.reads.QueryContext(ctx, `
		SELECT o.id, o.event_id, o.buyer, o.quantity, o.created_at, t.code
		FROM orders o LEFT JOIN tickets t ON t.order_id = o.id `+where+`
		ORDER BY o.id, t.code`, arg)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	orders := []api.Order{}
	for rows.Next() {
		var o api.Order
		var created int64
		var code sql.NullString
		if err := rows.Scan(&o.ID, &o.EventID, &o.Buyer, &o.Quantity, &created, &code); err != nil {
			return nil, err
		}
		if n := len(orders); n == 0 || orders[n-1].ID != o.ID {
			o.CreatedAt = time.Unix(0, created).UTC()
			o.Tickets = []string{}
			orders = append(orders, o)
		}
		if code.Valid {
			last := &orders[len(orders)-1]
			last.Tickets = append(last.Tickets, code.String)
		}
	}
	return orders, classify(rows.Err())
}

// Ticket returns one ticket, or ErrTicketNotFound.
func (s *Store) Ticket(ctx context.Context, code string) (api.Ticket, error) {
	t, _, err := getTicket(ctx, s.reads, code)
	return t, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getTicket(ctx context.Context, q querier, code string) (api.Ticket, string, error) {
	t := api.Ticket{Code: code}
	var checkedIn sql.NullInt64
	var key sql.NullString
	err := q.QueryRowContext(ctx,
		`SELECT event_id, order_id, checked_in_at, checkin_key FROM tickets WHERE code = ?`, code).
		Scan(&t.EventID, &t.OrderID, &checkedIn, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Ticket{}, "", ErrTicketNotFound
	}
	if err != nil {
		return api.Ticket{}, "", fmt.Errorf("get ticket: %w", classify(err))
	}
	if checkedIn.Valid {
		at := time.Unix(0, checkedIn.Int64).UTC()
		t.CheckedIn, t.CheckedInAt = true, &at
	}
	return t, key.String, nil
}

// CheckIn marks a ticket used. key, when not empty, makes the call safe to
// repeat: checking in again with the key that checked the ticket in
// succeeds and returns the ticket unchanged. Errors: ErrTicketNotFound,
// ErrAlreadyCheckedIn, ErrBusy.
func (s *Store) CheckIn(ctx context.Context, code, key string, now time.Time) (api.Ticket, error) {
	tx, err := s.writes.BeginTx(ctx, nil)
	if err != nil {
		return api.Ticket{}, fmt.Errorf("check in: %w", classify(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx,
		`UPDATE tickets SET checked_in_at = ?, checkin_key = ? WHERE code = ? AND checked_in_at IS NULL`,
		now.UnixNano(), sql.NullString{String: key, Valid: key != ""}, code)
	if err != nil {
		return api.Ticket{}, fmt.Errorf("check in: %w", classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return api.Ticket{}, fmt.Errorf("check in: %w", err)
	}
	t, storedKey, err := getTicket(ctx, tx, code)
	if err != nil {
		return api.Ticket{}, err
	}
	if n == 0 && (key == "" || key != storedKey) {
		return t, ErrAlreadyCheckedIn
	}
	if err := tx.Commit(); err != nil {
		return api.Ticket{}, fmt.Errorf("check in: commit: %w", classify(err))
	}
	return t, nil
}

// ticketCodes are short enough to type from a printed ticket and, at 80
// random bits, impossible to guess.
var ticketCodes = base32.StdEncoding.WithPadding(base32.NoPadding)

func newTicketCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return ticketCodes.EncodeToString(b)
}

// sqliteBusy is SQLITE_BUSY; extended codes keep it in the low byte.
const sqliteBusy = 5

// classify turns a lock timeout into ErrBusy and leaves other errors alone.
func classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqliteBusy {
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return err
}
