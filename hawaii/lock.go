package hawaii

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Locks and pins.
//
// A lock holds an environment of a service still: an owner says why and
// until when (a freeze, an incident). While it is active nobody promotes
// into the environment and automation does not deploy there. A pin is
// what a rollback leaves behind: the environment stays at the build it
// was rolled back to until a person unpins it, so that neither automation
// nor a hurried promotion undoes the rollback.

// MaxLockDuration bounds a lock, so a forgotten one cannot freeze an
// environment for ever.
const MaxLockDuration = 30 * 24 * time.Hour

// ErrLocked means the environment is locked or pinned.
var ErrLocked = errors.New("environment locked")

// Lock holds one environment of one service.
type Lock struct {
	Service string    `json:"service"`
	Env     string    `json:"env"`
	Owner   string    `json:"owner"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Active reports whether the lock still holds at now.
func (l Lock) Active(now time.Time) bool { return now.Before(l.Expires) }

func (l Lock) String() string {
	return fmt.Sprintf("%s is locked by %s until %s: %s", l.Env, l.Owner, l.Expires.UTC().Format(time.RFC3339), l.Reason)
}

// NewLock validates a lock request made at now for d.
func NewLock(service, env, owner, reason string, d time.Duration, now time.Time) (Lock, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case service == "" || env == "":
		return Lock{}, fmt.Errorf("%w: a lock needs a service and an environment", ErrInvalid)
	case reason == "":
		return Lock{}, fmt.Errorf("%w: a lock needs a reason others can read", ErrInvalid)
	case len(reason) > 500:
		return Lock{}, fmt.Errorf("%w: lock reason longer than 500 characters", ErrInvalid)
	case d <= 0 || d > MaxLockDuration:
		return Lock{}, fmt.Errorf("%w: lock duration %s: use more than 0 and at most %s", ErrInvalid, d, MaxLockDuration)
	}
	return Lock{Service: service, Env: env, Owner: owner, Reason: reason, Created: now, Expires: now.Add(d)}, nil
}

// Pin keeps an environment at one build after a rollback.
type Pin struct {
	Service string    `json:"service"`
	Env     string    `json:"env"`
	BuildID int64     `json:"buildId"`
	Version string    `json:"version"`
	By      string    `json:"by"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
}

func (p Pin) String() string {
	return fmt.Sprintf("%s is pinned to %s by %s since %s (%s): unpin it first", p.Env, p.Version, p.By, p.Since.UTC().Format(time.RFC3339), p.Reason)
}

// Holds reports what keeps automation and promotion out of env of a
// service at now: each active lock, and the pin. Empty means nothing.
func Holds(locks []Lock, pins []Pin, service, env string, now time.Time) []string {
	var out []string
	for _, l := range locks {
		if l.Service == service && l.Env == env && l.Active(now) {
			out = append(out, l.String())
		}
	}
	for _, p := range pins {
		if p.Service == service && p.Env == env {
			out = append(out, p.String())
		}
	}
	return out
}
