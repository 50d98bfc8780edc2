package auth

import "errors"

var (
	// ErrUnauthenticated: no credentials, or credentials that do not match
	// a live user, token or session. Deliberately vague about which part was
	// wrong.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the caller is known but its role is insufficient.
	ErrForbidden = errors.New("forbidden")
	// ErrExists: a user (or token) with that name already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound: the named user does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: an argument is malformed (name, password length, role).
	ErrInvalid = errors.New("invalid")
)
