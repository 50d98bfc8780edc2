package hawaii

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestProdBuilds: both stores name the builds in prod by their prod
// stage's finish, latest first, however old the build, and skip failed
// or cancelled prod stages and other services.
func TestProdBuilds(t *testing.T) {
	for name, store := range map[string]interface {
		Store
		prodLister
		LatestPassed(ctx context.Context, service string, st Stage) (*Build, error)
	}{"memory": NewMemoryStore(fixedNow), "sqlite": newSQLStore(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			var ids []int64
			for i := range 8 {
				svc := "inventory"
				if i == 5 {
					svc = "checkpoint"
				}
				b, _, err := store.Report(ctx, Build{Service: svc, Version: fmt.Sprintf("1.%d.0", i), Image: "img", SCMRevision: "r",
					Committer: "c", Timestamp: base, GUID: fmt.Sprintf("pb-%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, b.ID)
			}
			prod := func(i int, st Status, finished time.Duration) {
				if _, err := store.SetStage(ctx, StageRecord{BuildID: ids[i], Stage: StageProd, Status: st, Finished: base.Add(finished)}); err != nil {
					t.Fatal(err)
				}
			}
			prod(0, StatusPassed, 1*time.Minute) // the oldest build went to prod first
			prod(3, StatusPassed, 5*time.Minute) // then 1.3.0
			prod(1, StatusPassed, 9*time.Minute) // then back to 1.1.0 by hand
			prod(6, StatusFailed, 10*time.Minute)
			prod(7, StatusCancelled, 11*time.Minute)
			prod(5, StatusPassed, 12*time.Minute) // another service
			got, err := store.ProdBuilds(ctx, "inventory", 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[3] {
				t.Fatalf("prod builds %+v, want 1.1.0 then 1.3.0", got)
			}
			if got[0].Stage(StageProd).Status != StatusPassed || got[0].Version != "1.1.0" {
				t.Fatalf("prod build view %+v", got[0])
			}
			if none, err := store.ProdBuilds(ctx, "payments", 2); err != nil || len(none) != 0 {
				t.Fatalf("unknown service: %v, %v", none, err)
			}

			// The newest build that passed a stage: 1.6.0, then 1.2.0 once
			// a checkpoint build passed too (another service).
			for _, i := range []int{2, 6, 5} {
				if _, err := store.SetStage(ctx, StageRecord{BuildID: ids[i], Stage: StageQA, Status: StatusPassed}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := store.SetStage(ctx, StageRecord{BuildID: ids[7], Stage: StageQA, Status: StatusFailed}); err != nil {
				t.Fatal(err)
			}
			if b, err := store.LatestPassed(ctx, "inventory", StageQA); err != nil || b == nil || b.ID != ids[6] {
				t.Fatalf("latest QA-green inventory build: %+v, %v; want 1.6.0", b, err)
			}
			if b, err := store.LatestPassed(ctx, "inventory", StageAlpha); err != nil || b != nil {
				t.Fatalf("latest alpha-green inventory build: %+v, %v; want none", b, err)
			}
		})
	}
}
