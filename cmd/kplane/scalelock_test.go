package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/signalman"
)

// sharedEngine is what two replicas see of one Docker engine: both list
// the same containers, and a Scale counts, then takes a while to start the
// missing ones, as the docker driver does. Its own lock is per replica
// (Scale on one engine object), so it does not stop two replicas racing.
type sharedEngine struct {
	mu      sync.Mutex
	running int
	created int
}

// replicaView is one replica's driver on the shared engine.
type replicaView struct{ e *sharedEngine }

func (r replicaView) Instances(context.Context, signalman.Target) ([]signalman.Instance, error) {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	return make([]signalman.Instance, r.e.running), nil
}

func (r replicaView) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	r.e.mu.Lock()
	have := r.e.running
	r.e.mu.Unlock()
	res := signalman.Result{Target: t, From: have, To: n}
	time.Sleep(50 * time.Millisecond) // creating and confirming containers
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	for i := have; i < n; i++ {
		r.e.running++
		r.e.created++
		res.Started = append(res.Started, fmt.Sprintf("%s-%d", t.Service, i+1))
	}
	return res, nil
}

// Two replicas starting together with `instances: 3` start three
// instances, not six: each counts and starts under the service's etcd
// mutex, so the second counts what the first started. Without the locks
// the same two top-ups start six.
func TestStartupTopUpUnderLock(t *testing.T) {
	etcd := etcdtest.Start(t)
	t.Run("locked", func(t *testing.T) {
		eng := &sharedEngine{}
		var wg sync.WaitGroup
		started := make([]bool, 2)
		for i := range 2 {
			locks := newScaleLocks(t.Context(), etcd.Client(t))
			t.Cleanup(locks.close)
			wg.Go(func() {
				var err error
				started[i], err = topUp(t.Context(), replicaView{eng}, locks, signalman.Target{Service: "inventory", Env: "prod"}, 3)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if eng.created != 3 || eng.running != 3 {
			t.Fatalf("two replicas created %d instances (%d running), want 3", eng.created, eng.running)
		}
		if started[0] == started[1] {
			t.Fatalf("started %v: exactly one replica should have started instances", started)
		}
	})
	t.Run("unlocked races", func(t *testing.T) {
		eng := &sharedEngine{}
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, _ = topUp(t.Context(), replicaView{eng}, nil, signalman.Target{Service: "inventory", Env: "prod"}, 3)
			})
		}
		wg.Wait()
		if eng.created != 6 {
			t.Fatalf("without locks %d created; the test no longer shows the race", eng.created)
		}
	})
}

// A lock a replica holds is released for the others when its call ends,
// when its context ends while waiting, and when the replica closes.
func TestScaleLocksTakeTurns(t *testing.T) {
	etcd := etcdtest.Start(t)
	a, b := newScaleLocks(t.Context(), etcd.Client(t)), newScaleLocks(t.Context(), etcd.Client(t))
	t.Cleanup(a.close)
	t.Cleanup(b.close)
	target := signalman.Target{Service: "inventory", Env: "prod"}
	inA := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Do(t.Context(), target, func() error { close(inA); <-release; return nil })
	}()
	<-inA
	// b waits while a holds the target; another target is free.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := b.Do(ctx, target, func() error { return nil }); err == nil {
		t.Fatal("b took the lock a holds")
	}
	if err := b.Do(t.Context(), signalman.Target{Service: "checkpoint", Env: "prod"}, func() error { return nil }); err != nil {
		t.Fatalf("another target: %v", err)
	}
	// The same replica's other callers queue too.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	if err := a.Do(ctx2, target, func() error { return nil }); err == nil {
		t.Fatal("a second caller of replica a took the lock a holds")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Do(t.Context(), target, func() error { return nil }); err != nil {
		t.Fatalf("after a released: %v", err)
	}
}

// `kplane server` with an orchestrator and the autoscaler off still
// scales by hand, and records the scale as a manual decision.
func TestServerManualScaleWithoutAutoscaler(t *testing.T) {
	etcd := etcdtest.Start(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := serverTestConfig(t, etcd)
	cfg.Autoscaler.Enabled = false
	cfg.Driver = "process"
	cfg.Services = map[string]ServiceConfig{"inventory": {
		Path: exe,
		Args: []string{"ticketing", "inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(etcd.Endpoints(), ","),
			"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(t.TempDir(), "inventory.db")},
		Version: "1.0.0",
	}}
	s := startServer(t, cfg)
	var ans scaleAnswer
	s.call(t, "POST", "/api/v1/services/inventory/scale", `{"instances": 1}`, &ans)
	if ans.From != 0 || ans.To != 1 || len(ans.Started) != 1 {
		t.Fatalf("scale to 1: %+v", ans)
	}
	var ds struct {
		Decisions []headquarter.Decision `json:"decisions"`
	}
	s.call(t, "GET", "/api/v1/decisions?service=inventory", "", &ds)
	if len(ds.Decisions) != 1 || ds.Decisions[0].Action != actionManual || ds.Decisions[0].To != 1 ||
		ds.Decisions[0].Outcome != headquarter.OutcomeDone || ds.Decisions[0].Env != cfg.autoscalerEnv() && ds.Decisions[0].Env != "" {
		t.Fatalf("decisions %+v, want the manual scale to 1", ds.Decisions)
	}
	s.call(t, "POST", "/api/v1/services/inventory/scale", `{"instances": 0}`, &ans)
	s.stop(t)
}
