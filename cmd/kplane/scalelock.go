package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kplane/kplane/signalman"
)

// scaleLockPrefix holds one etcd mutex per target whose instance count
// kplane changes: /kplane/locks/scale/<service>/<env>.
const scaleLockPrefix = "/kplane/locks/scale/"

// scaleLockTTL is the lease of the locks' session: a replica that dies
// holding a lock frees it after this long.
const scaleLockTTL = 10

// scaleLocks serializes the changes of one target's instance count across
// kplane replicas with an etcd mutex (concurrency.Mutex) per target. A
// driver's own per-target lock (signalman.Locks) holds only within one
// process; on a shared engine (docker, swarm, marathon) two replicas
// that each see fewer instances than wanted would both start the missing
// ones. The mutexes live on one session of this replica, made on first
// use and again after it expired. Callers of one process queue on a local
// lock first: an etcd mutex is held by a session, so two holders in one
// process would both think they hold it.
type scaleLocks struct {
	cli  *clientv3.Client
	base context.Context // the session's lifetime: serve's

	mu    sync.Mutex
	sess  *concurrency.Session
	local map[string]chan struct{} // one-slot semaphores by key
}

func newScaleLocks(ctx context.Context, cli *clientv3.Client) *scaleLocks {
	return &scaleLocks{cli: cli, base: ctx, local: map[string]chan struct{}{}}
}

func (l *scaleLocks) localLock(key string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.local[key]
	if !ok {
		c = make(chan struct{}, 1)
		l.local[key] = c
	}
	return c
}

func (l *scaleLocks) session() (*concurrency.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != nil {
		select {
		case <-l.sess.Done(): // lease lost: a new one
			l.sess = nil
		default:
			return l.sess, nil
		}
	}
	s, err := concurrency.NewSession(l.cli, concurrency.WithTTL(scaleLockTTL), concurrency.WithContext(l.base))
	if err != nil {
		return nil, err
	}
	l.sess = s
	return s, nil
}

// Do runs fn holding t's mutex, waiting for another call on t, of this
// replica or another, to end. Calls do not nest. A nil scaleLocks runs fn
// at once.
func (l *scaleLocks) Do(ctx context.Context, t signalman.Target, fn func() error) error {
	if l == nil {
		return fn()
	}
	key := scaleLockPrefix + t.Service + "/" + t.Env
	local := l.localLock(key)
	select {
	case local <- struct{}{}:
		defer func() { <-local }()
	case <-ctx.Done():
		return fmt.Errorf("lock %s: %w", t, ctx.Err())
	}
	s, err := l.session()
	if err != nil {
		return fmt.Errorf("lock %s: %w", t, err)
	}
	m := concurrency.NewMutex(s, key)
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("lock %s: %w", t, err)
	}
	defer func() {
		// Unlock even when ctx ended meanwhile; the lease frees it anyway.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = m.Unlock(uctx)
	}()
	return fn()
}

// close revokes the session, freeing every lock this replica holds.
func (l *scaleLocks) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != nil {
		l.sess.Close()
		l.sess = nil
	}
}

// lockedOrchestrator scales under the target's scaleLocks mutex, so the
// scales of the autoscaler, of a person and of the start-up top-up on
// different replicas never interleave on one target.
type lockedOrchestrator struct {
	signalman.Orchestrator
	locks *scaleLocks
}

func (o lockedOrchestrator) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	var res signalman.Result
	err := o.locks.Do(ctx, t, func() error {
		var err error
		res, err = o.Orchestrator.Scale(ctx, t, n)
		return err
	})
	return res, err
}

// topUp starts the instances of t missing below n, holding t's mutex
// between counting and starting: replicas starting together count what
// the first one started. It never scales down and reports whether it
// started any. o must not be a lockedOrchestrator of the same locks:
// calls do not nest.
func topUp(ctx context.Context, o signalman.Orchestrator, locks *scaleLocks, t signalman.Target, n int) (bool, error) {
	started := false
	err := locks.Do(ctx, t, func() error {
		// A listing that fails is no answer: Scale converges to n
		// whatever runs, and says what went wrong.
		if have, err := o.Instances(ctx, t); err == nil && len(have) >= n {
			return nil
		}
		res, err := o.Scale(ctx, t, n)
		started = len(res.Started) > 0
		return err
	})
	return started, err
}
