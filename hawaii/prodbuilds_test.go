package hawaii

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
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

// TestProdBuildsExact: a build released long ago and promoted again (a
// rollback) after more than 20 newer prod releases is the one in prod,
// in every store; an Import's prod records count too, and a prod stage
// that stops being passed leaves the list.
func TestProdBuildsExact(t *testing.T) {
	stores := map[string]func(t *testing.T) interface {
		Store
		prodLister
	}{
		"memory": func(*testing.T) interface {
			Store
			prodLister
		} {
			return NewMemoryStore(fixedNow)
		},
		"sqlite": func(t *testing.T) interface {
			Store
			prodLister
		} {
			return newSQLStore(t)
		},
		"mariadb": func(t *testing.T) interface {
			Store
			prodLister
		} {
			srv := mariadbtest.Start(t)
			db, err := sqldb.OpenMySQL(t.Context(), srv.NewDatabase(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := sqldb.Migrate(t.Context(), db); err != nil {
				t.Fatal(err)
			}
			return NewSQLStore(db, fixedNow)
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := t.Context()
			base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			var ids []int64
			for i := range 30 {
				b, _, err := store.Report(ctx, Build{Service: "inventory", Version: fmt.Sprintf("1.%d.0", i), Image: "img", SCMRevision: "r",
					Committer: "c", Timestamp: base, GUID: fmt.Sprintf("px-%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, b.ID)
				if _, err := store.SetStage(ctx, StageRecord{BuildID: b.ID, Stage: StageProd, Status: StatusPassed,
					Finished: base.Add(time.Duration(i) * time.Minute)}); err != nil {
					t.Fatal(err)
				}
			}
			inProd := func() int64 {
				t.Helper()
				got, err := store.ProdBuilds(ctx, "inventory", 2)
				if err != nil || len(got) == 0 {
					t.Fatalf("prod builds: %v, %v", got, err)
				}
				return got[0].ID
			}
			if got := inProd(); got != ids[29] {
				t.Fatalf("in prod: build %d, want the last released %d", got, ids[29])
			}
			// 1.0.0 rolled back to after 29 newer releases: running, then
			// passed again.
			if _, err := store.SetStage(ctx, StageRecord{BuildID: ids[0], Stage: StageProd, Status: StatusRunning, Started: base.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if got := inProd(); got != ids[29] {
				t.Fatalf("while 1.0.0 rolls out again: build %d in prod, want %d", got, ids[29])
			}
			if _, err := store.SetStage(ctx, StageRecord{BuildID: ids[0], Stage: StageProd, Status: StatusPassed, Finished: base.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if got := inProd(); got != ids[0] {
				t.Fatalf("after the rollback to 1.0.0: build %d in prod, want %d", got, ids[0])
			}
			got, _ := store.ProdBuilds(ctx, "inventory", 2)
			if len(got) != 2 || got[1].ID != ids[29] {
				t.Fatalf("the build before prod: %+v, want %d", got, ids[29])
			}
			// The rolled-back-from build is cancelled: no longer a prod build.
			if _, err := store.SetStage(ctx, StageRecord{BuildID: ids[29], Stage: StageProd, Status: StatusCancelled, Finished: base.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if got, _ := store.ProdBuilds(ctx, "inventory", 2); len(got) != 2 || got[1].ID != ids[28] {
				t.Fatalf("after cancelling %d: %+v, want %d second", ids[29], got, ids[28])
			}
			if im, ok := store.(interface {
				Import(ctx context.Context, builds []Imported) ([]int64, error)
			}); ok {
				b := Build{Service: "inventory", Version: "2.0.0", Image: "img", SCMRevision: "r", Committer: "c", Timestamp: base, GUID: "px-import"}
				nid, err := im.Import(ctx, []Imported{{Build: b, Stages: []StageRecord{{Stage: StageProd, Status: StatusPassed, Finished: base.Add(2 * time.Hour)}}}})
				if err != nil {
					t.Fatal(err)
				}
				if got := inProd(); got != nid[0] {
					t.Fatalf("after an imported release: build %d in prod, want %d", got, nid[0])
				}
			}
		})
	}
}
