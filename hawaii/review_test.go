package hawaii

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
)

func TestDiffTests(t *testing.T) {
	prod := []CaseResult{
		{Stage: StageAlpha, Class: "inv", Name: "stock"},
		{Stage: StageAlpha, Class: "inv", Name: "oversell", Failed: true},
		{Stage: StageQA, Class: "inv", Name: "refund", Failed: true},
		{Stage: StageQA, Class: "inv", Name: "gone"},
	}
	cand := []CaseResult{
		{Stage: StageAlpha, Class: "inv", Name: "stock", Failed: true, Message: "want 10, got 9"},
		{Stage: StageAlpha, Class: "inv", Name: "oversell"},
		{Stage: StageQA, Class: "inv", Name: "refund", Failed: true},
		{Stage: StageQA, Class: "inv", Name: "new-and-failing", Failed: true},
		{Stage: StageQA, Class: "inv", Name: "new-and-passing"},
		// the same name in another stage is another case
		{Stage: StageQA, Class: "inv", Name: "stock"},
	}
	d := DiffTests(cand, prod)
	names := func(l []DiffCase) []string {
		var out []string
		for _, c := range l {
			out = append(out, string(c.Stage)+"/"+c.Name)
		}
		return out
	}
	if got := names(d.NewlyFailing); !slices.Equal(got, []string{"alpha/stock", "qa/new-and-failing"}) {
		t.Errorf("newly failing = %v", got)
	}
	if d.NewlyFailing[0].Message != "want 10, got 9" {
		t.Errorf("newly failing keeps no message: %+v", d.NewlyFailing[0])
	}
	if got := names(d.Fixed); !slices.Equal(got, []string{"alpha/oversell"}) {
		t.Errorf("fixed = %v", got)
	}
	if got := names(d.StillFailing); !slices.Equal(got, []string{"qa/refund"}) {
		t.Errorf("still failing = %v", got)
	}
	if d.Passing != 2 || d.ProdHasNoRuns {
		t.Errorf("passing = %d, prodHasNoRuns = %v; want 2, false", d.Passing, d.ProdHasNoRuns)
	}
	if d := DiffTests(cand[:1], nil); !d.ProdHasNoRuns || len(d.NewlyFailing) != 1 {
		t.Errorf("diff against nothing = %+v", d)
	}
}

func TestMakeReview(t *testing.T) {
	now := time.Unix(1000, 0)
	prod := Build{ID: 3, Service: "inventory", Version: "1.0.0", Image: "inventory:1.0.0", Committer: "carol",
		Changelog: []Commit{{ID: "c1", Message: "old"}}}
	mid := Build{ID: 4, Service: "inventory", Version: "1.1.0", Committer: "bob",
		Changelog: []Commit{{ID: "c2", Message: "mid"}}}
	cand := Build{ID: 5, Service: "inventory", Version: "1.2.0", Image: "inventory:1.2.0", Committer: "alice",
		Changelog: []Commit{{ID: "c3", Message: "new"}, {ID: "c2", Message: "mid"}}}
	later := Build{ID: 6, Service: "inventory", Changelog: []Commit{{ID: "c4"}}}
	releaser := auth.Identity{User: "rita", Role: auth.Releaser}
	base := func() ReviewInput {
		return ReviewInput{Candidate: cand, Prod: &prod, Between: []Build{later, cand, prod, mid},
			Alpha: StatusPassed, QA: StatusPassed, Viewer: releaser, Now: now}
	}
	codes := func(r Review) []string {
		var out []string
		for _, b := range r.Blockers {
			out = append(out, b.Code)
		}
		return out
	}
	lock, err := NewLock("inventory", "prod", "ops", "sale at noon", time.Hour, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := NewLock("inventory", "prod", "ops", "yesterday", time.Minute, now.Add(-time.Hour))
	otherEnv, _ := NewLock("inventory", "qa", "ops", "qa only", time.Hour, now)
	cases := []struct {
		name   string
		change func(*ReviewInput)
		want   []string
	}{
		{"green build, another releaser", func(*ReviewInput) {}, nil},
		{"alpha failed", func(in *ReviewInput) { in.Alpha = StatusFailed }, []string{BlockAlpha}},
		{"qa still running", func(in *ReviewInput) { in.QA = StatusRunning }, []string{BlockQA}},
		{"qa never ran", func(in *ReviewInput) { in.QA = "" }, []string{BlockQA}},
		{"prod locked", func(in *ReviewInput) { in.Locks = []Lock{lock} }, []string{BlockLocked}},
		{"expired and other-env locks do not count", func(in *ReviewInput) { in.Locks = []Lock{expired, otherEnv} }, nil},
		{"prod pinned", func(in *ReviewInput) {
			in.Pins = []Pin{{Service: "inventory", Env: "prod", BuildID: 3, Version: "1.0.0", By: "rita"}}
		}, []string{BlockLocked}},
		{"deploy running", func(in *ReviewInput) {
			in.Running = &Promotion{Kind: KindPromote, Version: "1.1.0", State: PromotionDeploying}
		}, []string{BlockRunning}},
		{"already in prod", func(in *ReviewInput) { in.Prod = &cand }, []string{BlockInProd}},
		{"developer", func(in *ReviewInput) { in.Viewer = auth.Identity{User: "dave", Role: auth.Developer} }, []string{BlockRole}},
		{"committer releaser", func(in *ReviewInput) { in.Viewer = auth.Identity{User: "alice", Role: auth.Releaser} }, []string{BlockCommitter}},
		{"committer releaser asking override", func(in *ReviewInput) {
			in.Viewer = auth.Identity{User: "alice", Role: auth.Releaser}
			in.Override = true
		}, []string{BlockCommitter}},
		{"committer admin without override", func(in *ReviewInput) { in.Viewer = auth.Identity{User: "alice", Role: auth.Admin} }, []string{BlockCommitter}},
		{"committer admin with override", func(in *ReviewInput) {
			in.Viewer = auth.Identity{User: "alice", Role: auth.Admin}
			in.Override = true
		}, nil},
		{"everything at once", func(in *ReviewInput) {
			in.Alpha, in.QA, in.Locks = StatusFailed, StatusFailed, []Lock{lock}
			in.Viewer = auth.Identity{User: "alice", Role: auth.Developer}
		}, []string{BlockAlpha, BlockQA, BlockLocked, BlockRole, BlockCommitter}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.change(&in)
			r := MakeReview(in)
			if got := codes(r); !slices.Equal(got, tc.want) {
				t.Fatalf("blockers = %v (%q), want %v", got, r.Reasons(), tc.want)
			}
			if r.CanPromote != (len(tc.want) == 0) {
				t.Fatalf("CanPromote = %v with blockers %v", r.CanPromote, tc.want)
			}
		})
	}

	r := MakeReview(base())
	var ids []string
	for _, c := range r.Commits {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"c3", "c2"}) {
		t.Errorf("commits between prod and candidate = %v, want [c3 c2]", ids)
	}
	if r.ImageFrom != "inventory:1.0.0" || r.ImageTo != "inventory:1.2.0" {
		t.Errorf("image change %q → %q", r.ImageFrom, r.ImageTo)
	}
	if !strings.Contains(r.WhoMay, "other than alice") {
		t.Errorf("WhoMay = %q", r.WhoMay)
	}
	in := base()
	in.Viewer = auth.Identity{User: "alice", Role: auth.Admin}
	in.Override = true
	if r := MakeReview(in); !r.Overridden {
		t.Errorf("admin override not marked: %+v", r)
	}
	in.Locks = []Lock{lock}
	if r := MakeReview(in); r.CanPromote || !strings.Contains(r.Reasons()[0], "locked by ops") {
		t.Errorf("an admin override must not lift a lock: %q", r.Reasons())
	}
}

func TestNewLockValidates(t *testing.T) {
	now := time.Unix(0, 0)
	for name, f := range map[string]func() (Lock, error){
		"no reason":   func() (Lock, error) { return NewLock("inventory", "prod", "ops", "  ", time.Hour, now) },
		"no env":      func() (Lock, error) { return NewLock("inventory", "", "ops", "r", time.Hour, now) },
		"zero length": func() (Lock, error) { return NewLock("inventory", "prod", "ops", "r", 0, now) },
		"too long":    func() (Lock, error) { return NewLock("inventory", "prod", "ops", "r", MaxLockDuration+1, now) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: NewLock accepted it", name)
		}
	}
	l, err := NewLock("inventory", "prod", "ops", "freeze", time.Hour, now)
	if err != nil || !l.Active(now.Add(59*time.Minute)) || l.Active(now.Add(time.Hour)) {
		t.Fatalf("lock %+v, %v: want active for exactly an hour", l, err)
	}
}
