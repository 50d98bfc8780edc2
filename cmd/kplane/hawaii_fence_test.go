package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/internal/etcdtest"
)

// TestPipelineFence: the pipeline's automatic writes pass while this
// replica holds the pipeline election, and are refused with
// hawaii.ErrNotLeader once its term ended, though the process lives on.
func TestPipelineFence(t *testing.T) {
	srv := etcdtest.Start(t)
	leader, err := headquarter.NewLeader(headquarter.LeaderConfig{Client: srv.Client(t), Prefix: "/kplane/hawaii/leader", ID: "r0", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fence := pipelineFence(leader)
	if err := fence(t.Context()); !errors.Is(err, hawaii.ErrNotLeader) {
		t.Errorf("before leading: %v, want hawaii.ErrNotLeader", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	// It campaigns again after its term and may lead again: only the
	// first term is reported.
	leading, lost := make(chan error, 8), make(chan struct{}, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		leader.Run(ctx, func(ctx context.Context) error {
			select {
			case leading <- fence(ctx):
			default:
			}
			<-ctx.Done()
			select {
			case lost <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case err := <-leading:
		if err != nil {
			t.Fatalf("while leading: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("never led")
	}
	f, err := leader.Fence()
	if err != nil {
		t.Fatal(err)
	}
	// The term ends behind the replica's back: its key is deleted.
	if _, err := srv.Client(t).Delete(t.Context(), f.Key); err != nil {
		t.Fatal(err)
	}
	if err := leader.Check(t.Context(), f); !errors.Is(err, headquarter.ErrNotLeader) {
		t.Fatalf("check after the key went: %v", err)
	}
	if err := fence(t.Context()); !errors.Is(err, hawaii.ErrNotLeader) {
		t.Errorf("after the term ended: %v, want hawaii.ErrNotLeader", err)
	}
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("the leader never noticed")
	}
}
