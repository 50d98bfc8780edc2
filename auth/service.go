package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kplane/kplane/internal/sqldb"
)

// DefaultSessionTTL is how long a browser session lasts when Config leaves
// SessionTTL zero: a working day, so an operator signs in once per shift.
const DefaultSessionTTL = 12 * time.Hour

// Config configures a Service. The zero value is usable.
type Config struct {
	// Logger receives audit lines (user created, token minted, sign-ins).
	// Nil discards.
	Logger *slog.Logger
	// Now is the clock for expiry and last-used times. Nil is time.Now.
	Now func() time.Time
	// SessionTTL is how long a browser session lives. Zero is
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// BcryptCost is the bcrypt work factor for new passwords. Zero is
	// bcrypt.DefaultCost; tests lower it to bcrypt.MinCost for speed.
	BcryptCost int
}

// Identity is who made a request and what they may do.
type Identity struct {
	User string
	Role Role
}

// Service stores and checks users, API tokens and sessions. It is safe for
// concurrent use.
type Service struct {
	db         *sql.DB
	log        *slog.Logger
	now        func() time.Time
	sessionTTL time.Duration
	cost       int

	// dummyHash is compared against when a login names an unknown user, so
	// that the response time does not reveal which user names exist. It is
	// computed on first use: New stays cheap.
	dummyOnce sync.Once
	dummyHash []byte
}

// New returns a Service storing in db, which must have been migrated by
// sqldb.Migrate.
func New(db *sql.DB, cfg Config) (*Service, error) {
	if db == nil {
		return nil, errors.New("auth: nil database")
	}
	s := &Service{
		db:         db,
		log:        cfg.Logger,
		now:        cfg.Now,
		sessionTTL: cfg.SessionTTL,
		cost:       cfg.BcryptCost,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sessionTTL == 0 {
		s.sessionTTL = DefaultSessionTTL
	}
	if s.sessionTTL < 0 {
		return nil, fmt.Errorf("auth: negative session TTL %s: %w", s.sessionTTL, ErrInvalid)
	}
	if s.cost == 0 {
		s.cost = bcrypt.DefaultCost
	}
	if s.cost < bcrypt.MinCost || s.cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d outside [%d, %d]: %w", s.cost, bcrypt.MinCost, bcrypt.MaxCost, ErrInvalid)
	}
	return s, nil
}

// inTx runs fn in a transaction and commits if fn returns nil.
func (s *Service) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return sqldb.InTx(ctx, s.db, fn)
}

// unixNano stores times as integers: portable across SQL dialects and
// compared without parsing.
func unixNano(t time.Time) int64 { return t.UnixNano() }

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }
