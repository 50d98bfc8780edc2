package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MaxDescriptionLen bounds a token's description: it is a label, not a
// document.
const MaxDescriptionLen = 200

// lastUsedGranularity limits last-used bookkeeping to one write per token
// per minute, so that authenticating a busy CI client is not a write per
// request on a single-writer database.
const lastUsedGranularity = time.Minute

// CreateToken mints an API token for an existing user and returns its
// plaintext, which is not stored and cannot be shown again. The token acts
// with the user's role. A zero ttl never expires. It returns ErrNotFound for
// an unknown user and ErrInvalid for a negative ttl or a long description.
func (s *Service) CreateToken(ctx context.Context, user, description string, ttl time.Duration) (string, error) {
	if ttl < 0 {
		return "", fmt.Errorf("create token for %s: negative ttl: %w", user, ErrInvalid)
	}
	if len(description) > MaxDescriptionLen {
		return "", fmt.Errorf("create token for %s: description longer than %d bytes: %w", user, MaxDescriptionLen, ErrInvalid)
	}
	plain, err := newToken()
	if err != nil {
		return "", fmt.Errorf("create token for %s: %w", user, err)
	}
	now := s.now()
	var id int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, _, err := lookupUser(ctx, tx, user); err != nil {
			return fmt.Errorf("user %s: %w", user, err)
		}
		id, err = insertToken(ctx, tx, plain, user, description, now, ttl)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create token for %s: %w", user, err)
	}
	s.log.Info("api token created", "user", user, "token_id", id, "description", description, "expires", expiryAttr(now, ttl))
	return plain, nil
}

func expiryAttr(now time.Time, ttl time.Duration) string {
	if ttl == 0 {
		return "never"
	}
	return now.Add(ttl).UTC().Format(time.RFC3339)
}

func insertToken(ctx context.Context, tx *sql.Tx, plain, user, description string, now time.Time, ttl time.Duration) (int64, error) {
	var expires sql.NullInt64
	if ttl > 0 {
		expires = sql.NullInt64{Int64: unixNano(now.Add(ttl)), Valid: true}
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO api_tokens (token_hash, user_name, description, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		hashSecret(plain), user, description, unixNano(now), expires)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// EnsureAdmin makes sure user name exists with the admin role and holds an
// API token, and returns that token. It is what `kplane dev` runs on every
// start. The user is created without a password (it signs in with the
// token). With token empty a new random token is minted each call; with a
// token given, that exact token is stored, and calling again with the same
// token succeeds without change, so a scripted dev instance can restart on
// the same data dir.
//
// It returns ErrExists if name exists with a role other than admin (it will
// not silently promote someone) or if the given token belongs to another
// user, and ErrInvalid for a malformed name or token.
func (s *Service) EnsureAdmin(ctx context.Context, name, token string) (string, error) {
	if err := validUserName(name); err != nil {
		return "", fmt.Errorf("ensure admin: %w", err)
	}
	if token != "" {
		if err := validToken(token); err != nil {
			return "", fmt.Errorf("ensure admin %s: %w", name, err)
		}
	} else {
		var err error
		if token, err = newToken(); err != nil {
			return "", fmt.Errorf("ensure admin %s: %w", name, err)
		}
	}
	now := s.now()
	var created, minted bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		role, _, err := lookupUser(ctx, tx, name)
		switch {
		case errors.Is(err, ErrNotFound):
			if err := insertUser(ctx, tx, name, "", Admin, now); err != nil {
				return err
			}
			created = true
		case err != nil:
			return err
		case role != Admin:
			return fmt.Errorf("user %s has role %s, not admin: %w", name, role, ErrExists)
		}
		var owner string
		err = tx.QueryRowContext(ctx, `SELECT user_name FROM api_tokens WHERE token_hash = ?`, hashSecret(token)).Scan(&owner)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err := insertToken(ctx, tx, token, name, "admin token (kplane dev)", now, 0)
			minted = true
			return err
		case err != nil:
			return err
		case owner != name:
			return fmt.Errorf("the given token belongs to another user: %w", ErrExists)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("ensure admin %s: %w", name, err)
	}
	if created {
		s.log.Info("admin user created", "user", name)
	}
	if minted {
		s.log.Info("admin token stored", "user", name)
	}
	return token, nil
}

// Authenticate returns the identity an API token acts as. It returns
// ErrUnauthenticated for an empty, unknown or expired token.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Identity, error) {
	id, _, err := s.authenticate(ctx, bearer)
	return id, err
}

// authenticate also returns the token's expiry (zero: none) so that a
// session opened with the token does not outlive it.
func (s *Service) authenticate(ctx context.Context, bearer string) (Identity, time.Time, error) {
	if bearer == "" {
		return Identity{}, time.Time{}, fmt.Errorf("no token: %w", ErrUnauthenticated)
	}
	want := hashSecret(bearer)
	var (
		tokenID          int64
		stored           []byte
		user, roleName   string
		expires, lastUse sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT t.id, t.token_hash, t.user_name, u.role, t.expires_at, t.last_used_at
		FROM api_tokens t JOIN users u ON u.name = t.user_name
		WHERE t.token_hash = ?`, want).Scan(&tokenID, &stored, &user, &roleName, &expires, &lastUse)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, time.Time{}, fmt.Errorf("unknown token: %w", ErrUnauthenticated)
	}
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("authenticate: %w", err)
	}
	// The index lookup already matched; comparing again in constant time
	// keeps the check independent of how the database compares blobs.
	if !equalSecret(stored, want) {
		return Identity{}, time.Time{}, fmt.Errorf("unknown token: %w", ErrUnauthenticated)
	}
	now := s.now()
	var exp time.Time
	if expires.Valid {
		exp = fromUnixNano(expires.Int64)
		if !now.Before(exp) {
			return Identity{}, time.Time{}, fmt.Errorf("token expired: %w", ErrUnauthenticated)
		}
	}
	role, err := ParseRole(roleName)
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("authenticate: stored role of %s: %w", user, err)
	}
	if !lastUse.Valid || now.Sub(fromUnixNano(lastUse.Int64)) >= lastUsedGranularity {
		if _, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, unixNano(now), tokenID); err != nil {
			// Bookkeeping only: the token is valid, so do not fail the request.
			s.log.Warn("record token use", "token_id", tokenID, "err", err)
		}
	}
	return Identity{User: user, Role: role}, exp, nil
}

// Token describes a stored API token, without its secret.
type Token struct {
	ID          int64
	User        string
	Description string
	Created     time.Time
	Expires     time.Time // zero: never
	LastUsed    time.Time // zero: never
}

// ListTokens returns the tokens of user (all users when user is empty),
// newest first.
func (s *Service) ListTokens(ctx context.Context, user string) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, user_name, description, created_at, expires_at, last_used_at
		FROM api_tokens WHERE ? = '' OR user_name = ? ORDER BY created_at DESC, id DESC`, user, user)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var created int64
		var expires, lastUse sql.NullInt64
		if err := rows.Scan(&t.ID, &t.User, &t.Description, &created, &expires, &lastUse); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Created = fromUnixNano(created)
		if expires.Valid {
			t.Expires = fromUnixNano(expires.Int64)
		}
		if lastUse.Valid {
			t.LastUsed = fromUnixNano(lastUse.Int64)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}
