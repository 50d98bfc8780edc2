package registry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff defaults, used when a config leaves them zero. The floor keeps a
// flapping etcd from being hammered; the ceiling bounds how long an
// instance stays unregistered after etcd is back (see RegisterAgainWithin).
// During an outage an attempt waits in the client for a connection (up to
// its 5 s timeout) before it fails, so a short ceiling adds no load.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = time.Second
)

// RegisterAgainWithin is how soon after etcd is reachable again a
// Registrar with the default backoff, on a client from Connect with the
// default reconnect delay, has written its key again, give or take gRPC's
// 20% reconnect jitter and one Grant and Put. A registrar blocked in a call
// proceeds when its client reconnects, within DefaultMaxReconnectDelay; one
// whose call failed just before that waits out its backoff, at most
// DefaultMaxBackoff more. Each registrar lands at a random point of that
// window, so a fleet cut off together comes back spread over it rather
// than in one burst; a fleet large enough that even this is a storm for
// its etcd should set a larger MaxBackoff (and accept a longer window).
const RegisterAgainWithin = DefaultMaxReconnectDelay + DefaultMaxBackoff

// backoff is jittered exponential backoff. Jitter matters here: after an
// etcd restart every instance of the fleet re-registers at once, and
// without it they would retry in lockstep.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	if min <= 0 {
		min = DefaultMinBackoff
	}
	if max <= 0 {
		max = DefaultMaxBackoff
	}
	if max < min {
		max = min
	}
	return &backoff{min: min, max: max, next: min}
}

// delay returns the next wait, in [d/2, d) for the current step d, and
// doubles the step up to max.
func (b *backoff) delay() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.next = b.min }

// sleep waits d or until ctx ends, reporting whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
