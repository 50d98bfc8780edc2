package hawaii

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/signalman"
)

// losingDeployer loses the leadership while it creates an environment.
type losingDeployer struct {
	*fakeDeployer
	leading *atomic.Bool
}

func (d losingDeployer) CreateEnv(ctx context.Context, env string, s []signalman.EnvService) ([]signalman.Deploy, error) {
	d.leading.Store(false)
	return d.fakeDeployer.CreateEnv(ctx, env, s)
}

// TestPipelineFencedWrites: once the pipeline leader's fence fails, its
// automatic stage writes nothing more (no "failed" beside the new
// leader's), runs no more jobs and starts no new stage; the new leader
// ends the stage it left.
func TestPipelineFencedWrites(t *testing.T) {
	ctx := t.Context()
	store := NewMemoryStore(nil)
	var leading atomic.Bool
	leading.Store(true)
	checks := atomic.Int32{}
	fence := func(context.Context) error {
		checks.Add(1)
		if leading.Load() {
			return nil
		}
		return fmt.Errorf("election key gone: %w", ErrNotLeader)
	}
	dep := losingDeployer{fakeDeployer: newFakeDeployer(), leading: &leading}
	pipelines := []ServicePipeline{{Service: "inventory", Alpha: []Job{junitJob}, QA: []Job{junitJob}}}
	old, err := NewPipeline(PipelineConfig{Store: store, Deployer: dep, Pipelines: pipelines, Owner: "r0", Fence: fence})
	if err != nil {
		t.Fatal(err)
	}
	b := report(t, store, "1.0", "alice")
	old.tick(ctx)

	// What the stage wrote before the fence failed is all there is.
	view, err := store.Build(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec := view.Stage(StageAlpha)
	if rec.Status != StatusRunning || len(rec.Steps) != 1 || rec.Steps[0].Status != StatusRunning {
		t.Errorf("alpha after the leadership was lost: %+v, want running with its create step, nothing after", rec)
	}
	prs, err := store.Promotions(ctx, PromotionQuery{BuildID: b.ID})
	if err != nil || len(prs) != 1 || prs[0].State != PromotionDeploying {
		t.Errorf("promotions %+v, %v: want one, deploying", prs, err)
	}
	if cases, _ := store.Results(ctx, b.ID, ""); len(cases) != 0 {
		t.Errorf("a deposed leader ran its jobs: %d results", len(cases))
	}
	events, err := store.AuditEvents(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Action == ActionStageChanged && !strings.Contains(string(e.Details), `"status":"running"`) {
			t.Errorf("a deposed leader audited %+v", e)
		}
	}
	if len(dep.destroyed) != 1 {
		t.Errorf("destroyed %v: the environment it created is still removed", dep.destroyed)
	}

	// Still not leading: a new build's alpha is not begun, nothing created.
	b2 := report(t, store, "2.0", "bob")
	before := len(dep.envs) + len(dep.destroyed)
	old.tick(ctx)
	if st := statusOf(t, store, b2.ID, StageAlpha); st != StatusPending {
		t.Errorf("alpha of a build reported after the loss: %s, want pending", st)
	}
	if n := len(dep.envs) + len(dep.destroyed); n != before {
		t.Errorf("a deposed leader created an environment")
	}

	// The new leader ends the stage the old one left, once.
	next, err := NewPipeline(PipelineConfig{Store: store, Deployer: newFakeDeployer(), Pipelines: pipelines, Owner: "r1",
		Fence: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.interrupted(ctx); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, store, b.ID, StageAlpha); st != StatusFailed {
		t.Errorf("alpha after the new leader took over: %s, want failed", st)
	}
	if checks.Load() == 0 {
		t.Error("the fence was never asked")
	}
}

// TestFencedWriterRetriesAnUnsureFence: a fence that cannot tell (etcd
// unreachable) is asked again, then the write is refused as not leading.
func TestFencedWriterRetriesAnUnsureFence(t *testing.T) {
	saved := fenceRetries
	fenceRetries = []time.Duration{time.Millisecond, time.Millisecond}
	t.Cleanup(func() { fenceRetries = saved })
	store := NewMemoryStore(nil)
	b := report(t, store, "1.0", "alice")
	var calls atomic.Int32
	w := fencedWriter{next: store, fence: func(context.Context) error {
		if calls.Add(1) < 3 {
			return errors.New("etcd: context deadline exceeded")
		}
		return nil
	}}
	if _, err := w.SetStage(t.Context(), StageRecord{BuildID: b.ID, Stage: StageAlpha, Status: StatusRunning}); err != nil {
		t.Fatalf("third answer was yes: %v", err)
	}
	calls.Store(0)
	w.fence = func(context.Context) error { calls.Add(1); return errors.New("etcd: unavailable") }
	_, err := w.SetStage(t.Context(), StageRecord{BuildID: b.ID, Stage: StageAlpha, Status: StatusFailed})
	if !errors.Is(err, ErrNotLeader) || calls.Load() != 3 {
		t.Errorf("unsure fence: %v after %d checks, want ErrNotLeader after 3", err, calls.Load())
	}
	if st := statusOf(t, store, b.ID, StageAlpha); st != StatusRunning {
		t.Errorf("refused write applied: %s", st)
	}
}
