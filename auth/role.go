package auth

import (
	"fmt"
	"strings"
)

// Role is what a user may do. Roles are ordered: each includes the ones
// below it. The zero Role is no role and allows nothing.
type Role int

const (
	// Viewer reads: services, decisions, builds, traces.
	Viewer Role = iota + 1
	// Developer also changes day-to-day settings (scaling, policies).
	Developer
	// Releaser also promotes builds to prod.
	Releaser
	// Admin also manages users and tokens.
	Admin
)

var roleNames = [...]string{"", "viewer", "developer", "releaser", "admin"}

// Roles lists every role from least to most privileged.
func Roles() []Role { return []Role{Viewer, Developer, Releaser, Admin} }

// ParseRole parses a role name as written in config, the CLI and the API.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if i > 0 && strings.EqualFold(strings.TrimSpace(s), n) {
			return Role(i), nil
		}
	}
	return 0, fmt.Errorf("role %q (want viewer, developer, releaser or admin): %w", s, ErrInvalid)
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool { return r >= Viewer && r <= Admin }

// Allows reports whether a holder of r may do what needs required. An
// invalid role on either side allows nothing, so a forgotten role in a route
// table fails closed.
func (r Role) Allows(required Role) bool {
	return r.Valid() && required.Valid() && r >= required
}

func (r Role) String() string {
	if !r.Valid() {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// MarshalText writes the role's name, so JSON shows "admin", not 4.
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("marshal role %d: %w", int(r), ErrInvalid)
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText parses a role name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
