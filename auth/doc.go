// Package auth holds kplane's users, API tokens, browser sessions and roles.
//
// Roles are ordered viewer < developer < releaser < admin; a caller is
// allowed an action when its role is at least the one the action requires
// (Role.Allows). Passwords are stored as bcrypt hashes; API tokens and
// session ids are random and stored only as SHA-256 hashes, so a copy of the
// database does not let anyone sign in. A token's plaintext is returned once,
// by CreateToken or EnsureAdmin, and never again.
//
// The package stores in the SQL database it is given (schema in
// internal/sqldb migrations) and knows nothing about HTTP: package web turns
// a bearer header or a cookie into a call here and maps the sentinel errors
// of errors.go to status codes. Errors and logs never contain a secret.
//
// Use:
//
//	svc, err := auth.New(db, auth.Config{Logger: logger})
//	id, err := svc.Authenticate(ctx, bearerToken)
//	if !id.Role.Allows(auth.Releaser) { ... }
package auth
