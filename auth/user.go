package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Password length limits. bcrypt ignores bytes past 72, so a longer
// password would silently be truncated; refuse it instead.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// User is a stored user, without secrets.
type User struct {
	Name    string
	Role    Role
	Created time.Time
	// HasPassword is false for users who sign in with API tokens only (the
	// dev admin).
	HasPassword bool
}

var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func validUserName(name string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("user name %q: want 1-64 letters, digits, '.', '_', '@' or '-': %w", name, ErrInvalid)
	}
	return nil
}

func validPassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return fmt.Errorf("password must be %d to %d bytes: %w", MinPasswordLen, MaxPasswordLen, ErrInvalid)
	}
	return nil
}

// CreateUser adds a user who signs in with name and password. It returns
// ErrExists if the name is taken and ErrInvalid for a malformed name, a
// password of the wrong length or an unknown role.
func (s *Service) CreateUser(ctx context.Context, name, password string, role Role) error {
	if err := validUserName(name); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if err := validPassword(password); err != nil {
		return fmt.Errorf("create user %s: %w", name, err)
	}
	if !role.Valid() {
		return fmt.Errorf("create user %s: role %d: %w", name, int(role), ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return fmt.Errorf("create user %s: hash password: %w", name, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		return insertUser(ctx, tx, name, string(hash), role, s.now())
	})
	if err != nil {
		return fmt.Errorf("create user %s: %w", name, err)
	}
	s.log.Info("user created", "user", name, "role", role.String())
	return nil
}

func insertUser(ctx context.Context, tx *sql.Tx, name, hash string, role Role, now time.Time) error {
	if _, _, err := lookupUser(ctx, tx, name); err == nil {
		return ErrExists
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)`,
		name, hash, role.String(), unixNano(now))
	return err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// lookupUser returns the user's role and password hash, or ErrNotFound.
func lookupUser(ctx context.Context, q querier, name string) (Role, string, error) {
	var roleName, hash string
	err := q.QueryRowContext(ctx, `SELECT role, password_hash FROM users WHERE name = ?`, name).Scan(&roleName, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", ErrNotFound
	}
	if err != nil {
		return 0, "", err
	}
	role, err := ParseRole(roleName)
	if err != nil {
		return 0, "", fmt.Errorf("stored role of %s: %w", name, err)
	}
	return role, hash, nil
}

// ListUsers returns every user, ordered by name.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, created_at, password_hash <> '' FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var roleName string
		var created int64
		if err := rows.Scan(&u.Name, &roleName, &created, &u.HasPassword); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		if u.Role, err = ParseRole(roleName); err != nil {
			return nil, fmt.Errorf("list users: stored role of %s: %w", u.Name, err)
		}
		u.Created = fromUnixNano(created)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}
