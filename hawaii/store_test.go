package hawaii

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func fixedNow() time.Time { return t0 }

func TestMemoryStore(t *testing.T) { testStore(t, NewMemoryStore(fixedNow)) }

func TestSQLStore(t *testing.T) { testStore(t, newSQLStore(t)) }

func TestSQLStoreMariaDB(t *testing.T) {
	srv := mariadbtest.Start(t)
	db, err := sqldb.OpenMySQL(t.Context(), srv.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	testStore(t, NewSQLStore(db, fixedNow))
}

func newSQLStore(t testing.TB) *SQLStore {
	db, err := sqldb.Open(t.Context(), filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return NewSQLStore(db, fixedNow)
}

func testBuild(service, guid string) Build {
	return Build{
		Service: service, Version: "1.2." + guid, Image: "registry.local/" + service + ":" + guid,
		SCMRevision: "abc123" + guid, Committer: "alice", Timestamp: t0.Add(-time.Hour),
		GUID: guid, ReportedAt: t0, ReportedBy: "ci",
		Changelog: []Commit{{ID: "c1", Author: "alice", Message: "fix oversell", Time: t0.Add(-2 * time.Hour)}},
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testStore is the conformance suite every Store passes.
func testStore(t *testing.T, s Store) {
	ctx := t.Context()
	var ids []int64
	t.Run("report assigns increasing IDs; a repeated GUID returns the stored build", func(t *testing.T) {
		for i, svc := range []string{"inventory", "checkpoint", "inventory", "inventory"} {
			b, created, err := s.Report(ctx, testBuild(svc, "g"+string(rune('0'+i))))
			if err != nil || !created {
				t.Fatalf("report %d: created %v, %v", i, created, err)
			}
			if len(ids) > 0 && b.ID <= ids[len(ids)-1] {
				t.Errorf("ID %d not above %d", b.ID, ids[len(ids)-1])
			}
			ids = append(ids, b.ID)
		}
		again := testBuild("inventory", "g0")
		again.Version, again.Image = "9.9.9", "evil:latest"
		b, created, err := s.Report(ctx, again)
		if err != nil || created {
			t.Fatalf("repeated GUID: created %v, %v", created, err)
		}
		want := testBuild("inventory", "g0")
		want.ID = ids[0]
		if g, w := mustJSON(t, b), mustJSON(t, want); g != w {
			t.Errorf("repeated GUID returned\n got %s\nwant %s (immutable)", g, w)
		}
		v, err := s.Build(ctx, ids[0])
		if err != nil || v.Version != want.Version || v.Image != want.Image {
			t.Errorf("stored build changed: %+v, %v", v, err)
		}
		if g, w := mustJSON(t, v.Build), mustJSON(t, want); g != w {
			t.Errorf("build round trip\n got %s\nwant %s", g, w)
		}
		byGUID, err := s.BuildByGUID(ctx, "g1")
		if err != nil || byGUID.ID != ids[1] {
			t.Errorf("by GUID: %+v, %v", byGUID, err)
		}
		if _, err := s.Build(ctx, 9999); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing build: %v, want ErrNotFound", err)
		}
		if _, err := s.BuildByGUID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing GUID: %v, want ErrNotFound", err)
		}
	})
	t.Run("list newest first, by service, keyset paged", func(t *testing.T) {
		all, err := s.Builds(ctx, BuildQuery{})
		if err != nil || len(all) != 4 {
			t.Fatalf("all: %d, %v", len(all), err)
		}
		for i, v := range all {
			if v.ID != ids[3-i] {
				t.Errorf("position %d is build %d, want %d", i, v.ID, ids[3-i])
			}
			if len(v.Stages) != 3 || v.Stages[0].Stage != StageAlpha || v.Stages[0].Status != StatusPending {
				t.Errorf("untouched stages: %+v", v.Stages)
			}
		}
		page1, err := s.Builds(ctx, BuildQuery{Service: "inventory", Limit: 2})
		if err != nil || len(page1) != 2 || page1[0].ID != ids[3] || page1[1].ID != ids[2] {
			t.Fatalf("inventory page 1: %+v, %v", page1, err)
		}
		page2, err := s.Builds(ctx, BuildQuery{Service: "inventory", Limit: 2, Before: page1[1].ID})
		if err != nil || len(page2) != 1 || page2[0].ID != ids[0] {
			t.Fatalf("inventory page 2: %+v, %v", page2, err)
		}
		none, err := s.Builds(ctx, BuildQuery{Service: "nobody"})
		if err != nil || len(none) != 0 {
			t.Errorf("unknown service: %+v, %v", none, err)
		}
	})
	t.Run("stage records and test results", func(t *testing.T) {
		id := ids[3]
		rec := StageRecord{BuildID: id, Stage: StageAlpha, Status: StatusRunning, Started: t0,
			Steps: []Step{{Name: "create environment", Status: StatusPassed, Started: t0, Finished: t0.Add(2 * time.Second)}}}
		got, err := s.SetStage(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusRunning || len(got.Steps) != 1 || got.Steps[0].Duration() != 2*time.Second || !got.Updated.Equal(t0) {
			t.Errorf("set stage returned %+v", got)
		}
		cases := []TestCase{
			{BuildID: id, Stage: StageAlpha, Suite: "s", Class: "c", Name: "ok", Duration: time.Millisecond, Status: TestPassed},
			{BuildID: id, Stage: StageAlpha, Suite: "s", Class: "c", Name: "broken", Status: TestFailed, Message: "want 1, got 2"},
			{BuildID: id, Stage: StageAlpha, Suite: "s", Class: "c", Name: "later", Status: TestSkipped},
		}
		n, err := s.AddResults(ctx, id, StageAlpha, cases)
		if err != nil || n != (TestCounts{Passed: 1, Failed: 1, Skipped: 1}) {
			t.Fatalf("add results: %+v, %v", n, err)
		}
		n, err = s.AddResults(ctx, id, StageAlpha, []TestCase{{BuildID: id, Stage: StageAlpha, Name: "boom", Status: TestError, Message: "panic"}})
		if err != nil || n != (TestCounts{Passed: 1, Failed: 1, Skipped: 1, Errored: 1}) {
			t.Fatalf("second run: %+v, %v", n, err)
		}
		// QA results before any QA stage record: counted all the same.
		if _, err := s.AddResults(ctx, id, StageQA, []TestCase{{BuildID: id, Stage: StageQA, Name: "e2e", Status: TestPassed}}); err != nil {
			t.Fatal(err)
		}
		// A later SetStage keeps the counts.
		rec.Status, rec.Finished = StatusFailed, t0.Add(time.Minute)
		if _, err := s.SetStage(ctx, rec); err != nil {
			t.Fatal(err)
		}
		v, err := s.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		a := v.Stage(StageAlpha)
		if a.Status != StatusFailed || !a.Finished.Equal(t0.Add(time.Minute)) || a.Tests.Total() != 4 || a.Tests.Failed != 1 {
			t.Errorf("alpha after results: %+v", a)
		}
		if q := v.Stage(StageQA); q.Status != StatusPending || q.Tests.Passed != 1 {
			t.Errorf("qa: %+v", q)
		}
		list, err := s.Builds(ctx, BuildQuery{Limit: 1})
		if err != nil || list[0].Stage(StageAlpha).Tests != a.Tests {
			t.Errorf("list shows %+v, want the build page's counts %+v (%v)", list[0].Stage(StageAlpha).Tests, a.Tests, err)
		}
		res, err := s.Results(ctx, id, "")
		if err != nil || len(res) != 5 {
			t.Fatalf("results: %d, %v", len(res), err)
		}
		if res[1].Name != "broken" || res[1].Message != "want 1, got 2" || res[0].Duration != time.Millisecond || res[4].Stage != StageQA || res[0].ID == 0 {
			t.Errorf("results: %+v", res)
		}
		alpha, err := s.Results(ctx, id, StageAlpha)
		if err != nil || len(alpha) != 4 {
			t.Errorf("alpha results: %d, %v", len(alpha), err)
		}
		if err := s.ClearResults(ctx, id, StageAlpha); err != nil {
			t.Fatal(err)
		}
		v, _ = s.Build(ctx, id)
		if a := v.Stage(StageAlpha); a.Tests.Total() != 0 || a.Status != StatusFailed {
			t.Errorf("after clear: %+v", a)
		}
		if res, _ := s.Results(ctx, id, ""); len(res) != 1 {
			t.Errorf("after clearing alpha, %d results, want qa's 1", len(res))
		}
	})
	t.Run("stage and result errors", func(t *testing.T) {
		if _, err := s.SetStage(ctx, StageRecord{BuildID: 9999, Stage: StageQA, Status: StatusRunning}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing build: %v", err)
		}
		if _, err := s.SetStage(ctx, StageRecord{BuildID: ids[0], Stage: "beta", Status: StatusRunning}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad stage: %v", err)
		}
		if _, err := s.AddResults(ctx, 9999, StageQA, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("results of missing build: %v", err)
		}
		if _, err := s.AddResults(ctx, ids[0], StageQA, []TestCase{{BuildID: ids[1], Stage: StageQA, Status: TestPassed}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("case of another build: %v", err)
		}
		if _, err := s.Results(ctx, 9999, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("results of missing build: %v", err)
		}
	})
	t.Run("audit log newest first, filtered, paged", func(t *testing.T) {
		events := []Event{
			{Actor: "webhook:jenkins", Action: ActionBuildReported, Service: "inventory", BuildID: ids[0], Details: Details(map[string]string{"guid": "g0"})},
			{Actor: "bob", Action: ActionPromoted, Service: "inventory", BuildID: ids[0], Stage: StageProd},
			{Actor: "bob", Action: ActionLocked, Service: "checkpoint", Stage: StageQA, Time: t0.Add(time.Second)},
		}
		for _, e := range events {
			got, err := s.Audit(ctx, e)
			if err != nil || got.ID == 0 {
				t.Fatalf("audit: %+v, %v", got, err)
			}
		}
		all, err := s.AuditEvents(ctx, AuditQuery{})
		if err != nil || len(all) != 3 {
			t.Fatalf("all events: %d, %v", len(all), err)
		}
		if all[0].Action != ActionLocked || !all[0].Time.Equal(t0.Add(time.Second)) || string(all[0].Details) != "{}" {
			t.Errorf("newest: %+v", all[0])
		}
		if all[2].Actor != "webhook:jenkins" || !all[2].Time.Equal(t0) || string(all[2].Details) != `{"guid":"g0"}` {
			t.Errorf("oldest: %+v details %s", all[2], all[2].Details)
		}
		for _, c := range []struct {
			name string
			q    AuditQuery
			want int
		}{
			{"by service", AuditQuery{Service: "inventory"}, 2},
			{"by build", AuditQuery{BuildID: ids[0]}, 2},
			{"by actor", AuditQuery{Actor: "bob"}, 2},
			{"by action", AuditQuery{Action: ActionPromoted}, 1},
			{"before", AuditQuery{Before: all[0].ID}, 2},
			{"limit", AuditQuery{Limit: 1}, 1},
			{"nothing", AuditQuery{Actor: "nobody"}, 0},
		} {
			got, err := s.AuditEvents(ctx, c.q)
			if err != nil || len(got) != c.want {
				t.Errorf("%s: %d events, want %d (%v)", c.name, len(got), c.want, err)
			}
		}
		if _, err := s.Audit(ctx, Event{Action: ActionPromoted}); !errors.Is(err, ErrInvalid) {
			t.Errorf("event without actor: %v", err)
		}
		if _, err := s.Audit(ctx, Event{Actor: "x", Action: "y", Details: json.RawMessage("{nope")}); !errors.Is(err, ErrInvalid) {
			t.Errorf("event with bad details: %v", err)
		}
	})
	t.Run("webhook deliveries are claimed once", func(t *testing.T) {
		ok, err := s.ClaimDelivery(ctx, "msg_1", t0)
		if err != nil || !ok {
			t.Fatalf("first claim: %v, %v", ok, err)
		}
		if ok, err := s.ClaimDelivery(ctx, "msg_1", t0.Add(time.Second)); err != nil || ok {
			t.Errorf("replayed claim: %v, %v", ok, err)
		}
		if err := s.ReleaseDelivery(ctx, "msg_1"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.ClaimDelivery(ctx, "msg_1", t0.Add(2*time.Second)); !ok {
			t.Error("released delivery not claimable again")
		}
		// Long after the window, the ID is forgotten (the timestamp check
		// refuses such a message before the claim).
		if ok, _ := s.ClaimDelivery(ctx, "msg_1", t0.Add(time.Hour)); !ok {
			t.Error("delivery remembered past twice the window")
		}
	})
	t.Run("locks and pins: one per environment, replaced, deleted, listed", func(t *testing.T) {
		cet := time.FixedZone("CET", 3600)
		l1 := Lock{Service: "inventory", Env: "prod", Owner: "alice", Reason: "sale tonight", Created: t0.In(cet), Expires: t0.Add(time.Hour)}
		l2 := Lock{Service: "checkpoint", Env: "qa", Owner: "bob", Reason: "flaky env", Created: t0, Expires: t0.Add(-time.Minute)}
		for _, l := range []Lock{l1, l2} {
			if err := s.PutLock(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		l1b := l1
		l1b.Reason, l1b.Expires = "sale moved", t0.Add(2*time.Hour)
		if err := s.PutLock(ctx, l1b); err != nil {
			t.Fatal(err)
		}
		pin := Pin{Service: "inventory", Env: "prod", BuildID: ids[0], Version: "1.2.g0", By: "carol", Reason: "rollback from 1.2.g3", Since: t0}
		if err := s.PutPin(ctx, pin); err != nil {
			t.Fatal(err)
		}
		locks, pins, err := s.LocksAndPins(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		l1b.Created = t0 // the same instant, given back in UTC
		if g, w := mustJSON(t, locks), mustJSON(t, []Lock{l2, l1b}); g != w {
			t.Errorf("all locks (expired included, by service and env)\n got %s\nwant %s", g, w)
		}
		if g, w := mustJSON(t, pins), mustJSON(t, []Pin{pin}); g != w {
			t.Errorf("pins\n got %s\nwant %s", g, w)
		}
		if locks[1].Created.Location() != time.UTC {
			t.Errorf("lock created in %v, want UTC", locks[1].Created.Location())
		}
		locks, pins, err = s.LocksAndPins(ctx, "checkpoint")
		if err != nil || len(locks) != 1 || locks[0].Env != "qa" || len(pins) != 0 {
			t.Errorf("checkpoint's: %+v %+v %v", locks, pins, err)
		}
		if ok, err := s.DeleteLock(ctx, "checkpoint", "qa"); err != nil || !ok {
			t.Errorf("delete an (expired) lock: %v, %v", ok, err)
		}
		if ok, err := s.DeleteLock(ctx, "checkpoint", "qa"); err != nil || ok {
			t.Errorf("delete it again: %v, %v", ok, err)
		}
		if ok, err := s.DeletePin(ctx, "inventory", "prod"); err != nil || !ok {
			t.Errorf("delete pin: %v, %v", ok, err)
		}
		if ok, err := s.DeletePin(ctx, "inventory", "prod"); err != nil || ok {
			t.Errorf("delete pin again: %v, %v", ok, err)
		}
		locks, pins, err = s.LocksAndPins(ctx, "")
		if err != nil || len(locks) != 1 || len(pins) != 0 {
			t.Errorf("left: %+v %+v %v", locks, pins, err)
		}
		if _, err := s.DeleteLock(ctx, "inventory", "prod"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("promotions: IDs grow, saved again in place, listed newest first", func(t *testing.T) {
		mk := func(build int64, env string, st PromotionState, runner string) Promotion {
			return Promotion{BuildID: build, Service: "inventory", Version: "v", Env: env, Kind: KindAutomatic,
				State: st, Started: t0, Updated: t0, Runner: runner}
		}
		var saved []Promotion
		for _, p := range []Promotion{
			mk(ids[0], "alpha", PromotionPending, "replica-a"),
			mk(ids[0], "qa", PromotionPending, "replica-a"),
			mk(ids[2], "alpha", PromotionPending, "replica-b"),
			mk(ids[0], "prod", PromotionPending, "replica-b"),
		} {
			got, err := s.SavePromotion(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(saved) > 0 && got.ID <= saved[len(saved)-1].ID {
				t.Errorf("promotion ID %d not above %d", got.ID, saved[len(saved)-1].ID)
			}
			saved = append(saved, got)
		}
		// The first passes; the prod one deploys with an admin override.
		p0 := saved[0]
		if err := p0.Advance(PromotionDeploying, t0.Add(time.Second), ""); err != nil {
			t.Fatal(err)
		}
		if err := p0.Advance(PromotionPassed, t0.Add(2*time.Second), ""); err != nil {
			t.Fatal(err)
		}
		p0.RunEnv = "alpha-b1"
		p3 := saved[3]
		p3.Kind, p3.By, p3.Override, p3.DeployID = KindPromote, "dave", true, "d-0123"
		if err := p3.Advance(PromotionDeploying, t0.Add(time.Second), ""); err != nil {
			t.Fatal(err)
		}
		for _, p := range []Promotion{p0, p3, p3} { // an unchanged save is fine
			if _, err := s.SavePromotion(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.Promotions(ctx, PromotionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		want := []Promotion{p3, saved[2], saved[1], p0}
		if g, w := mustJSON(t, all), mustJSON(t, want); g != w {
			t.Errorf("all promotions\n got %s\nwant %s", g, w)
		}
		for _, c := range []struct {
			name string
			q    PromotionQuery
			want []int64
		}{
			{"of a build", PromotionQuery{BuildID: ids[0]}, []int64{p3.ID, saved[1].ID, p0.ID}},
			{"into an environment", PromotionQuery{Service: "inventory", Env: "alpha"}, []int64{saved[2].ID, p0.ID}},
			{"in a state", PromotionQuery{State: PromotionPassed}, []int64{p0.ID}},
			{"running", PromotionQuery{Running: true}, []int64{p3.ID, saved[2].ID, saved[1].ID}},
			{"running on a replica", PromotionQuery{Running: true, Runner: "replica-a"}, []int64{saved[1].ID}},
			{"running in prod", PromotionQuery{Service: "inventory", Env: "prod", Running: true, Limit: 1}, []int64{p3.ID}},
			{"limit", PromotionQuery{Limit: 2}, []int64{p3.ID, saved[2].ID}},
			{"nothing", PromotionQuery{Service: "nobody"}, nil},
		} {
			got, err := s.Promotions(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []int64
			for _, p := range got {
				gotIDs = append(gotIDs, p.ID)
			}
			if !reflect.DeepEqual(gotIDs, c.want) {
				t.Errorf("%s: %v, want %v", c.name, gotIDs, c.want)
			}
		}
		if _, err := s.SavePromotion(ctx, Promotion{ID: 9999, BuildID: ids[0], Env: "qa", State: PromotionPending}); !errors.Is(err, ErrNotFound) {
			t.Errorf("save of an unknown promotion: %v, want ErrNotFound", err)
		}
		if _, err := s.SavePromotion(ctx, mk(9999, "qa", PromotionPending, "")); !errors.Is(err, ErrNotFound) {
			t.Errorf("promotion of an unknown build: %v, want ErrNotFound", err)
		}
	})
	t.Run("one page of results, failures first, with totals", func(t *testing.T) {
		b, _, err := s.Report(ctx, testBuild("inventory", "paged"))
		if err != nil {
			t.Fatal(err)
		}
		statuses := []TestStatus{TestPassed, TestFailed, TestPassed, TestSkipped, TestError, TestPassed, TestFailed}
		add := func(st Stage, prefix string, n int) {
			var cases []TestCase
			for i := range n {
				cases = append(cases, TestCase{BuildID: b.ID, Stage: st, Suite: "s", Class: "c", Name: fmt.Sprintf("%s%02d", prefix, i),
					Duration: time.Millisecond, Status: statuses[(i+len(prefix))%len(statuses)], Message: "m"})
			}
			if _, err := s.AddResults(ctx, b.ID, st, cases); err != nil {
				t.Fatal(err)
			}
		}
		// QA first, then alpha in two runs: the order is by stage, then
		// by insertion, whatever order the runs came in.
		add(StageQA, "q", 9)
		add(StageAlpha, "a", 11)
		add(StageAlpha, "b", 5)
		first, err := s.ResultsPage(ctx, b.ID, ResultQuery{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range first.Cases {
			got = append(got, c.Name+":"+string(c.Status))
		}
		if want := []string{"a00:failed", "a03:error", "a05:failed"}; !reflect.DeepEqual(got, want) {
			t.Errorf("first page %v, want %v", got, want)
		}
		all, err := s.Results(ctx, b.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []Stage{"", StageAlpha, StageQA, StageProd} {
			for _, lim := range []int{1, 4, 7, 50} {
				for off := 0; off <= 27; off += 3 {
					q := ResultQuery{Stage: st, Offset: off, Limit: lim}
					p, err := s.ResultsPage(ctx, b.ID, q)
					if err != nil {
						t.Fatal(err)
					}
					if g, w := mustJSON(t, p), mustJSON(t, PageResults(all, q)); g != w {
						t.Fatalf("%+v:\n got %s\nwant %s", q, g, w)
					}
				}
			}
		}
		whole, _ := s.ResultsPage(ctx, b.ID, ResultQuery{Limit: MaxLimit})
		if whole.Total != 25 || whole.Failing != 11 || len(whole.Cases) != 25 || whole.Next() != -1 {
			t.Errorf("whole build: total %d failing %d cases %d next %d", whole.Total, whole.Failing, len(whole.Cases), whole.Next())
		}
		if err := s.ClearResults(ctx, b.ID, StageAlpha); err != nil {
			t.Fatal(err)
		}
		if p, err := s.ResultsPage(ctx, b.ID, ResultQuery{Stage: StageAlpha}); err != nil || p.Total != 0 || len(p.Cases) != 0 {
			t.Errorf("cleared stage: %+v, %v", p, err)
		}
		if _, err := s.ResultsPage(ctx, 9999, ResultQuery{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("page of a missing build: %v, want ErrNotFound", err)
		}
		if _, err := s.ResultsPage(ctx, b.ID, ResultQuery{Stage: "staging"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown stage: %v, want ErrInvalid", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := s.Report(cctx, testBuild("inventory", "cancelled")); !errors.Is(err, context.Canceled) {
			t.Errorf("report on cancelled context: %v", err)
		}
	})
}

func TestImport(t *testing.T) {
	s := newSQLStore(t)
	b := testBuild("inventory", "imp1")
	ids, err := s.Import(t.Context(), []Imported{{
		Build:  b,
		Stages: []StageRecord{{Stage: StageAlpha, Status: StatusPassed}},
		Cases: []TestCase{
			{Stage: StageAlpha, Name: "a", Status: TestPassed},
			{Stage: StageAlpha, Name: "b", Status: TestFailed},
			{Stage: StageQA, Name: "c", Status: TestPassed},
		},
	}})
	if err != nil || len(ids) != 1 {
		t.Fatal(ids, err)
	}
	v, err := s.Build(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if a := v.Stage(StageAlpha); a.Status != StatusPassed || a.Tests != (TestCounts{Passed: 1, Failed: 1}) {
		t.Errorf("alpha: %+v", a)
	}
	if q := v.Stage(StageQA); q.Status != StatusPending || q.Tests.Passed != 1 {
		t.Errorf("qa: %+v", q)
	}
	res, _ := s.Results(t.Context(), ids[0], "")
	want := []string{"a", "b", "c"}
	var got []string
	for _, c := range res {
		got = append(got, c.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	if _, err := s.Import(t.Context(), []Imported{{Build: b}}); err == nil {
		t.Error("import of a stored GUID succeeded")
	}
}
