package signalman

import "sync"

// Locks holds one try-lock per target: the "one change to a target at a
// time, a second one is ErrBusy" rule the contract asks of every driver.
// The zero value is ready to use.
type Locks struct {
	mu   sync.Mutex
	held map[Target]bool
}

// TryLock takes t's lock and reports whether it was free.
func (l *Locks) TryLock(t Target) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[t] {
		return false
	}
	if l.held == nil {
		l.held = make(map[Target]bool)
	}
	l.held[t] = true
	return true
}

// Unlock releases t's lock.
func (l *Locks) Unlock(t Target) {
	l.mu.Lock()
	delete(l.held, t)
	l.mu.Unlock()
}
