package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Session is a signed-in browser.
type Session struct {
	// ID is the secret the browser holds in its cookie. Only the hash is
	// stored.
	ID string
	// CSRF must accompany every form the session posts; web compares it in
	// constant time.
	CSRF    string
	User    string
	Expires time.Time
}

// Login checks a user's password and opens a session. Every failure is
// ErrUnauthenticated, without saying whether the user exists.
func (s *Service) Login(ctx context.Context, user, password string) (Session, error) {
	role, hash, err := lookupUser(ctx, s.db, user)
	switch {
	case errors.Is(err, ErrNotFound):
		s.burnPasswordCheck(password)
		s.log.Info("login failed: unknown user")
		return Session{}, fmt.Errorf("login: wrong user name or password: %w", ErrUnauthenticated)
	case err != nil:
		return Session{}, fmt.Errorf("login: %w", err)
	case hash == "":
		// Token-only users (the dev admin) have no password to match.
		s.burnPasswordCheck(password)
		s.log.Info("login failed: user has no password", "user", user)
		return Session{}, fmt.Errorf("login: wrong user name or password: %w", ErrUnauthenticated)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		s.log.Info("login failed: wrong password", "user", user)
		return Session{}, fmt.Errorf("login: wrong user name or password: %w", ErrUnauthenticated)
	}
	sess, err := s.openSession(ctx, Identity{User: user, Role: role}, time.Time{})
	if err != nil {
		return Session{}, fmt.Errorf("login %s: %w", user, err)
	}
	s.log.Info("login", "user", user, "method", "password")
	return sess, nil
}

// LoginToken opens a session for the owner of an API token, so that the
// console can be used with nothing but the token `kplane dev` prints. The
// session ends no later than the token does.
func (s *Service) LoginToken(ctx context.Context, token string) (Session, error) {
	id, tokenExpiry, err := s.authenticate(ctx, token)
	if err != nil {
		s.log.Info("login failed: bad token")
		return Session{}, fmt.Errorf("login: %w", err)
	}
	sess, err := s.openSession(ctx, id, tokenExpiry)
	if err != nil {
		return Session{}, fmt.Errorf("login %s: %w", id.User, err)
	}
	s.log.Info("login", "user", id.User, "method", "token")
	return sess, nil
}

// burnPasswordCheck spends the time a real bcrypt comparison would.
func (s *Service) burnPasswordCheck(password string) {
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("kplane-timing-equaliser"), s.cost)
	})
	_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
}

func (s *Service) openSession(ctx context.Context, id Identity, notAfter time.Time) (Session, error) {
	sid, err := newSecret()
	if err != nil {
		return Session{}, err
	}
	csrf, err := newSecret()
	if err != nil {
		return Session{}, err
	}
	now := s.now()
	expires := now.Add(s.sessionTTL)
	if !notAfter.IsZero() && notAfter.Before(expires) {
		expires = notAfter
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// Sweep expired sessions here: sign-ins are rare enough to pay for
		// it and no background goroutine is needed.
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, unixNano(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			hashSecret(sid), id.User, csrf, unixNano(now), unixNano(expires))
		return err
	})
	if err != nil {
		return Session{}, err
	}
	return Session{ID: sid, CSRF: csrf, User: id.User, Expires: expires.UTC()}, nil
}

// Session returns who a browser session belongs to, with its current role
// (a role change applies to open sessions at once). It returns
// ErrUnauthenticated for an empty, unknown or expired id.
func (s *Service) Session(ctx context.Context, id string) (Identity, Session, error) {
	if id == "" {
		return Identity{}, Session{}, fmt.Errorf("no session: %w", ErrUnauthenticated)
	}
	want := hashSecret(id)
	var (
		stored         []byte
		user, roleName string
		csrf           string
		expires        int64
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT s.id_hash, s.user_name, u.role, s.csrf_token, s.expires_at
		FROM sessions s JOIN users u ON u.name = s.user_name
		WHERE s.id_hash = ?`, want).Scan(&stored, &user, &roleName, &csrf, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !equalSecret(stored, want)) {
		return Identity{}, Session{}, fmt.Errorf("unknown session: %w", ErrUnauthenticated)
	}
	if err != nil {
		return Identity{}, Session{}, fmt.Errorf("session: %w", err)
	}
	exp := fromUnixNano(expires)
	if !s.now().Before(exp) {
		return Identity{}, Session{}, fmt.Errorf("session expired: %w", ErrUnauthenticated)
	}
	role, err := ParseRole(roleName)
	if err != nil {
		return Identity{}, Session{}, fmt.Errorf("session: stored role of %s: %w", user, err)
	}
	return Identity{User: user, Role: role}, Session{ID: id, CSRF: csrf, User: user, Expires: exp}, nil
}

// Logout ends a session. Ending an unknown or already ended session is not
// an error: the browser's state is what the user wanted either way.
func (s *Service) Logout(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, hashSecret(id)); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}
