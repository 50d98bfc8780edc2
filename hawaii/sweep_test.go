package hawaii

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
)

// sweepTestStore is a Store with the Sweeper's methods.
type sweepTestStore interface {
	Store
	SweepStore
}

func TestMemorySweepStore(t *testing.T) {
	testSweepStore(t, func(testing.TB) sweepTestStore { return NewMemoryStore(fixedNow) })
}

func TestSQLSweepStore(t *testing.T) {
	testSweepStore(t, func(t testing.TB) sweepTestStore { return newSQLStore(t) })
}

func TestSQLSweepStoreMariaDB(t *testing.T) {
	srv := mariadbtest.Start(t)
	testSweepStore(t, func(t testing.TB) sweepTestStore {
		db, err := sqldb.OpenMySQL(t.Context(), srv.NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := sqldb.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		return NewSQLStore(db, fixedNow)
	})
}

// runningProd stores a build whose prod promotion runner is running: the
// promotion deploying, the prod stage running its rollout step.
func runningProd(t *testing.T, s Store, guid, runner string) (Build, Promotion) {
	t.Helper()
	ctx := t.Context()
	b, _, err := s.Report(ctx, testBuild("inventory", guid))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStage(ctx, StageRecord{BuildID: b.ID, Stage: StageProd, Status: StatusRunning, Started: t0,
		Steps: []Step{{Name: "rolling deploy d-1", Status: StatusRunning, Started: t0}}}); err != nil {
		t.Fatal(err)
	}
	pr, err := s.SavePromotion(ctx, Promotion{BuildID: b.ID, Service: b.Service, Version: b.Version, Env: string(StageProd),
		Kind: KindPromote, State: PromotionDeploying, By: "rita", DeployID: "d-1", RunEnv: "prod", Runner: runner, Started: t0, Updated: t0})
	if err != nil {
		t.Fatal(err)
	}
	return b, pr
}

// testSweepStore is the conformance suite of InterruptPromotion.
func testSweepStore(t *testing.T, newStore func(testing.TB) sweepTestStore) {
	t.Run("interrupt ends a running promotion of its runner once, with its stage and one audit event", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		b, pr := runningProd(t, s, "g1", "replica-a")
		at, reason := t0.Add(time.Hour), signalman.ReplicaGone("replica-a")
		if _, ok, err := s.InterruptPromotion(ctx, pr.ID, "replica-b", at, reason); err != nil || ok {
			t.Fatalf("InterruptPromotion by the wrong runner = %v, %v; want false", ok, err)
		}
		if _, ok, err := s.InterruptPromotion(ctx, pr.ID+100, "replica-a", at, reason); err != nil || ok {
			t.Fatalf("InterruptPromotion of an unknown promotion = %v, %v; want false", ok, err)
		}
		got, ok, err := s.InterruptPromotion(ctx, pr.ID, "replica-a", at, reason)
		if err != nil || !ok {
			t.Fatalf("InterruptPromotion = %v, %v; want true", ok, err)
		}
		want := pr
		want.State, want.Error, want.Updated, want.Ended = PromotionFailed, reason, at, at
		if mustJSON(t, got) != mustJSON(t, want) {
			t.Errorf("interrupted promotion\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
		}
		prs, err := s.Promotions(ctx, PromotionQuery{BuildID: b.ID})
		if err != nil || len(prs) != 1 || mustJSON(t, prs[0]) != mustJSON(t, want) {
			t.Errorf("stored promotion %s (%v), want %s", mustJSON(t, prs), err, mustJSON(t, want))
		}
		v, err := s.Build(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		st := v.Stage(StageProd)
		if st.Status != StatusFailed || !st.Finished.Equal(at) || len(st.Steps) != 1 ||
			st.Steps[0].Status != StatusFailed || st.Steps[0].Message != reason || !st.Steps[0].Finished.Equal(at) {
			t.Errorf("prod stage: %s", mustJSON(t, st))
		}
		events, err := s.AuditEvents(ctx, AuditQuery{BuildID: b.ID})
		if err != nil || len(events) != 1 {
			t.Fatalf("audit events %s, %v; want one", mustJSON(t, events), err)
		}
		e := events[0]
		var details map[string]string
		if err := json.Unmarshal(e.Details, &details); err != nil {
			t.Fatal(err)
		}
		if e.Actor != "pipeline" || e.Action != ActionStageChanged || e.Stage != StageProd || !e.Time.Equal(at) ||
			details["status"] != "failed" || details["reason"] != reason || details["runner"] != "replica-a" {
			t.Errorf("audit event: %s", mustJSON(t, e))
		}
		if _, ok, err := s.InterruptPromotion(ctx, pr.ID, "replica-a", at.Add(time.Minute), "again"); err != nil || ok {
			t.Errorf("second InterruptPromotion = %v, %v; want false", ok, err)
		}
	})

	t.Run("a stage that is not running is left as it is; a stage without a running step says why", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		b, pr := runningProd(t, s, "g1", "replica-a")
		passed := StageRecord{BuildID: b.ID, Stage: StageProd, Status: StatusPassed, Started: t0, Finished: t0.Add(time.Minute)}
		if _, err := s.SetStage(ctx, passed); err != nil {
			t.Fatal(err)
		}
		b2, pr2 := runningProd(t, s, "g2", "replica-a")
		if _, err := s.SetStage(ctx, StageRecord{BuildID: b2.ID, Stage: StageProd, Status: StatusRunning, Started: t0}); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Hour)
		for _, p := range []Promotion{pr, pr2} {
			if _, ok, err := s.InterruptPromotion(ctx, p.ID, "replica-a", at, "gone"); err != nil || !ok {
				t.Fatalf("InterruptPromotion %d = %v, %v", p.ID, ok, err)
			}
		}
		if v, err := s.Build(ctx, b.ID); err != nil || v.Stage(StageProd).Status != StatusPassed {
			t.Errorf("passed stage: %+v, %v", v.Stage(StageProd), err)
		}
		v, err := s.Build(ctx, b2.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st := v.Stage(StageProd); st.Status != StatusFailed || len(st.Steps) != 1 || st.Steps[0].Name != "interrupted" || st.Steps[0].Message != "gone" {
			t.Errorf("stage without steps: %s", mustJSON(t, st))
		}
	})

	t.Run("of replicas interrupting the same promotion at once, exactly one does", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		b, pr := runningProd(t, s, "g1", "replica-a")
		var won atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				_, ok, err := s.InterruptPromotion(ctx, pr.ID, "replica-a", t0.Add(time.Hour), "gone")
				if err != nil {
					errs <- err
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		events, err := s.AuditEvents(ctx, AuditQuery{BuildID: b.ID})
		if err != nil {
			t.Fatal(err)
		}
		if won.Load() != 1 || len(events) != 1 {
			t.Errorf("%d sweepers ended it, %d audit events; want exactly one of each", won.Load(), len(events))
		}
	})
}

// goneSet is a Replicas that declares the named replicas gone.
type goneSet map[string]bool

func (g goneSet) Gone(_ context.Context, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, n := range names {
		out[n] = g[n]
	}
	return out, nil
}

func TestSweeperEndsOnlyTheGoneRunnersPromotions(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore(fixedNow)
	_, gone := runningProd(t, s, "g1", "replica-gone")
	_, live := runningProd(t, s, "g2", "replica-live")
	_, self := runningProd(t, s, "g3", "replica-self")
	_, unnamed := runningProd(t, s, "g4", "")
	sw, err := NewSweeper(SweeperConfig{Store: s, Replicas: goneSet{"replica-gone": true, "replica-self": true, "": true},
		Self: "replica-self", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	ended, err := sw.Sweep(ctx)
	if err != nil || len(ended) != 1 || ended[0].ID != gone.ID || ended[0].Error != signalman.ReplicaGone("replica-gone") {
		t.Fatalf("Sweep = %s, %v; want only replica-gone's promotion", mustJSON(t, ended), err)
	}
	for _, pr := range []Promotion{live, self, unnamed} {
		prs, err := s.Promotions(ctx, PromotionQuery{BuildID: pr.BuildID})
		if err != nil || len(prs) != 1 || prs[0].State != PromotionDeploying {
			t.Errorf("promotion of %q: %s, %v; want untouched", pr.Runner, mustJSON(t, prs), err)
		}
	}
	if again, err := sw.Sweep(ctx); err != nil || len(again) != 0 {
		t.Errorf("second Sweep = %v, %v", again, err)
	}
}
