package registry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff defaults, used when a config leaves them zero. The floor keeps a
// flapping etcd from being hammered; the ceiling bounds how long an
// instance stays unregistered after etcd is back.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

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
