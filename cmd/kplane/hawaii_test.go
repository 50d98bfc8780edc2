package main

import (
	"testing"
	"time"

	"github.com/kplane/kplane/hawaii"
)

// TestSeedDemoBuilds: kplane dev's demo builds are three to promote and a
// newest one whose alpha failed, so its review lists why it is blocked;
// a second start seeds nothing more.
func TestSeedDemoBuilds(t *testing.T) {
	ctx := t.Context()
	store := hawaii.NewMemoryStore(nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for range 2 {
		if err := seedDemoBuilds(ctx, store, now); err != nil {
			t.Fatal(err)
		}
	}
	builds, err := store.Builds(ctx, hawaii.BuildQuery{Service: "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	if len(builds) != 4 {
		t.Fatalf("%d demo builds, want 4", len(builds))
	}
	failed := builds[0]
	if failed.Version != "1.4.0" || failed.Stage(hawaii.StageAlpha).Status != hawaii.StatusFailed || failed.Stage(hawaii.StageAlpha).Tests.Failed != 1 {
		t.Fatalf("newest demo build %s: alpha %+v, want 1.4.0 failed with one failed test", failed.Version, failed.Stage(hawaii.StageAlpha))
	}
	for _, b := range builds[1:] {
		if st := b.Stage(hawaii.StageAlpha).Status; st != hawaii.StatusPending {
			t.Errorf("demo build %s: alpha %s, want pending (the pipeline runs it)", b.Version, st)
		}
	}
	r := hawaii.MakeReview(hawaii.ReviewInput{Candidate: failed.Build, Alpha: failed.Stage(hawaii.StageAlpha).Status,
		QA: failed.Stage(hawaii.StageQA).Status, Now: now})
	if r.CanPromote || len(r.Blockers) == 0 || r.Blockers[0].Code != hawaii.BlockAlpha {
		t.Fatalf("review of the failed demo build: %+v", r.Blockers)
	}
}
