package hawaii

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/signalman"
)

// fakeDeployer is an in-memory deployer: every deploy succeeds at once
// unless its version is in fail.
type fakeDeployer struct {
	mu        sync.Mutex
	envs      map[string][]signalman.EnvService
	destroyed []string
	deploys   map[string]signalman.Deploy
	order     []string
	fail      map[string]bool
}

func newFakeDeployer() *fakeDeployer {
	return &fakeDeployer{envs: map[string][]signalman.EnvService{}, deploys: map[string]signalman.Deploy{}, fail: map[string]bool{}}
}

func (f *fakeDeployer) Deploy(_ context.Context, req signalman.DeployRequest) (signalman.Deploy, error) {
	return f.Begin(req)
}

func (f *fakeDeployer) Begin(req signalman.DeployRequest) (signalman.Deploy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := signalman.Deploy{ID: fmt.Sprintf("d%d", len(f.order)+1), Target: req.Target, Version: req.Version,
		State: signalman.DeploySucceeded, Started: time.Now()}
	if f.fail[req.Version] {
		d.State, d.Error = signalman.DeployRolledBack, "instance failed its health check"
	}
	f.deploys[d.ID] = d
	f.order = append(f.order, d.ID)
	return d, nil
}

func (f *fakeDeployer) Get(_ context.Context, id string) (signalman.Deploy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.deploys[id]
	if !ok {
		return d, signalman.ErrUnknownDeploy
	}
	return d, nil
}

func (f *fakeDeployer) Subscribe(context.Context, string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	return ch, func() {}, nil
}

func (f *fakeDeployer) List(context.Context, signalman.Target, int) ([]signalman.Deploy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []signalman.Deploy
	for _, id := range f.order {
		out = append(out, f.deploys[id])
	}
	return out, nil
}

func (f *fakeDeployer) CreateEnv(_ context.Context, env string, s []signalman.EnvService) ([]signalman.Deploy, error) {
	f.mu.Lock()
	f.envs[env] = s
	f.mu.Unlock()
	var out []signalman.Deploy
	for _, x := range s {
		d, _ := f.Begin(signalman.DeployRequest{Target: signalman.Target{Service: x.Service, Env: env}, Version: x.Version})
		out = append(out, d)
	}
	return out, nil
}

func (f *fakeDeployer) DestroyEnv(_ context.Context, env string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.envs, env)
	f.destroyed = append(f.destroyed, env)
	return nil
}

// junitJob writes a report with one case that fails when the version is
// "bad".
var junitJob = Job{Name: "smoke", Command: []string{"sh", "-c", `status='<testcase classname="inv" name="stock"/>'
if [ "$KPLANE_VERSION" = bad ]; then status='<testcase classname="inv" name="stock"><failure message="oversold">want 10</failure></testcase>'; fi
printf '<testsuite name="s">%s<testcase classname="inv" name="env-%s"/></testsuite>' "$status" "$KPLANE_ENV" > "$KPLANE_JUNIT"`}}

func newTestPipeline(t *testing.T) (*Pipeline, Store, *fakeDeployer) {
	t.Helper()
	store := NewMemoryStore(nil)
	dep := newFakeDeployer()
	p, err := NewPipeline(PipelineConfig{Store: store, Deployer: dep, EnvTimeout: time.Minute,
		Pipelines: []ServicePipeline{{Service: "inventory", Dependencies: []string{"checkpoint@1.0.0"}, Alpha: []Job{junitJob}, QA: []Job{junitJob}}}})
	if err != nil {
		t.Fatal(err)
	}
	return p, store, dep
}

func report(t *testing.T, s Store, version, committer string) Build {
	t.Helper()
	b, _, err := s.Report(context.Background(), Build{Service: "inventory", Version: version, Image: "inventory:" + version,
		SCMRevision: "abc" + version, Committer: committer, Timestamp: time.Now().UTC(), GUID: "g-" + version,
		Changelog: []Commit{{ID: "c-" + version, Message: "change " + version}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statusOf(t *testing.T, s Store, id int64, st Stage) Status {
	t.Helper()
	v, err := s.Build(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Stage(st).Status
}

func waitStatus(t *testing.T, s Store, id int64, st Stage, want Status) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for statusOf(t, s, id, st) != want {
		if time.Now().After(deadline) {
			t.Fatalf("build %d %s = %s, want %s", id, st, statusOf(t, s, id, st), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPipelineAlphaQAPromoteRollback(t *testing.T) {
	ctx := context.Background()
	p, store, dep := newTestPipeline(t)
	rita := auth.Identity{User: "rita", Role: auth.Releaser}

	good := report(t, store, "1.0.0", "alice")
	p.tick(ctx) // alpha
	if got := statusOf(t, store, good.ID, StageAlpha); got != StatusPassed {
		t.Fatalf("alpha = %s, want passed", got)
	}
	env := AlphaEnv(good.ID)
	if !slices.Contains(dep.destroyed, env) || len(dep.envs) != 0 {
		t.Fatalf("alpha environment %s not destroyed: destroyed %v, live %v", env, dep.destroyed, dep.envs)
	}
	res, err := store.Results(ctx, good.ID, StageAlpha)
	if err != nil || len(res) != 2 || res[1].Name != "env-"+env {
		t.Fatalf("alpha results = %+v, %v: want the job run against %s", res, err, env)
	}
	p.tick(ctx) // qa
	if got := statusOf(t, store, good.ID, StageQA); got != StatusPassed {
		t.Fatalf("qa = %s, want passed", got)
	}

	// The committer may not promote her own build; a developer lacks the role.
	_, err = p.Promote(ctx, good.ID, auth.Identity{User: "alice", Role: auth.Releaser}, false)
	var be *BlockedError
	if !errors.As(err, &be) || !be.Only(BlockCommitter) {
		t.Fatalf("committer promote = %v, want blocked by separation of duties", err)
	}
	if _, err = p.Promote(ctx, good.ID, auth.Identity{User: "dave", Role: auth.Developer}, false); !errors.As(err, &be) || !be.Only(BlockRole) {
		t.Fatalf("developer promote = %v, want blocked by role", err)
	}
	if _, err := p.Lock(ctx, "inventory", "prod", "sale at noon", time.Hour, rita); err != nil {
		t.Fatal(err)
	}
	if _, err = p.Promote(ctx, good.ID, rita, false); !errors.As(err, &be) || !be.Only(BlockLocked) {
		t.Fatalf("promote into a locked prod = %v, want blocked by the lock", err)
	}
	if err := p.Unlock(ctx, "inventory", "prod", rita); err != nil {
		t.Fatal(err)
	}
	pr, err := p.Promote(ctx, good.ID, rita, false)
	if err != nil || pr.DeployID == "" {
		t.Fatalf("promote = %+v, %v", pr, err)
	}
	waitStatus(t, store, good.ID, StageProd, StatusPassed)

	// The second build fails in alpha and cannot be promoted.
	bad := report(t, store, "bad", "bob")
	p.tick(ctx)
	if got := statusOf(t, store, bad.ID, StageAlpha); got != StatusFailed {
		t.Fatalf("bad alpha = %s, want failed", got)
	}
	if !slices.Contains(dep.destroyed, AlphaEnv(bad.ID)) {
		t.Fatalf("failed alpha environment not destroyed: %v", dep.destroyed)
	}
	p.tick(ctx)
	if got := statusOf(t, store, bad.ID, StageQA); got != StatusPending {
		t.Fatalf("qa ran after a red alpha: %s", got)
	}
	r, err := p.Review(ctx, bad.ID, rita, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Diff.NewlyFailing) != 1 || r.Diff.NewlyFailing[0].Name != "stock" || r.CanPromote {
		t.Fatalf("review of the bad build: diff %+v, blockers %q", r.Diff, r.Reasons())
	}

	// A third good build goes to prod as an admin override by its committer.
	third := report(t, store, "1.2.0", "root")
	p.tick(ctx)
	p.tick(ctx)
	if _, err := p.Promote(ctx, third.ID, auth.Identity{User: "root", Role: auth.Admin}, true); err != nil {
		t.Fatalf("admin override promote: %v", err)
	}
	waitStatus(t, store, third.ID, StageProd, StatusPassed)
	ev, err := store.AuditEvents(ctx, AuditQuery{Action: ActionOverride})
	if err != nil || len(ev) != 1 || ev[0].Actor != "root" || ev[0].BuildID != third.ID {
		t.Fatalf("override audit = %+v, %v", ev, err)
	}

	// Roll back: prod returns to the first build and is pinned.
	if _, err := p.Rollback(ctx, "inventory", rita, "errors after 1.2.0"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, store, third.ID, StageProd, StatusCancelled)
	if cur, err := p.InProd(ctx, "inventory"); err != nil || cur == nil || cur.ID != good.ID {
		t.Fatalf("in prod after rollback = %+v, %v; want build %d", cur, err, good.ID)
	}
	if _, err = p.Promote(ctx, third.ID, rita, false); !errors.As(err, &be) || !be.Only(BlockLocked) {
		t.Fatalf("promote while pinned = %v, want blocked by the pin", err)
	}
	if err := p.Unpin(ctx, "inventory", "prod", rita); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Promote(ctx, third.ID, rita, false); err != nil {
		t.Fatalf("promote after unpin: %v", err)
	}
	waitStatus(t, store, third.ID, StageProd, StatusPassed)
	for _, a := range []Action{ActionPromoted, ActionRolledBack, ActionPinned, ActionUnpinned, ActionLocked, ActionUnlocked, ActionStageChanged} {
		if ev, err := store.AuditEvents(ctx, AuditQuery{Action: a}); err != nil || len(ev) == 0 {
			t.Errorf("no %s in the audit log (%v)", a, err)
		}
	}
	p.wg.Wait()
}

func TestPipelineRolledBackRollout(t *testing.T) {
	ctx := context.Background()
	p, store, dep := newTestPipeline(t)
	b := report(t, store, "2.0.0", "alice")
	p.tick(ctx)
	p.tick(ctx)
	dep.fail["2.0.0"] = true
	if _, err := p.Promote(ctx, b.ID, auth.Identity{User: "rita", Role: auth.Releaser}, false); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, store, b.ID, StageProd, StatusFailed)
	p.wg.Wait()
	prs, err := p.Promotions(ctx, b.ID)
	if err != nil || len(prs) == 0 {
		t.Fatalf("promotions: %v, %v", prs, err)
	}
	if got := prs[0].State; got != PromotionRolledBack {
		t.Fatalf("promotion state = %s, want rolled_back", got)
	}
}

// A new pipeline on the same store — kplane restarted, or another replica
// took over — keeps the locks, the pin a rollback left and the promotions,
// and ends the promotions its previous life left running as failed.
func TestPipelineRestartKeepsHoldsAndPromotions(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore(nil)
	newPipe := func(owner string) *Pipeline {
		p, err := NewPipeline(PipelineConfig{Store: store, Deployer: newFakeDeployer(), Owner: owner, Poll: time.Hour,
			Pipelines: []ServicePipeline{{Service: "inventory", Alpha: []Job{junitJob}, QA: []Job{junitJob}}}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := newPipe("replica-a")
	rita := auth.Identity{User: "rita", Role: auth.Releaser}
	b1 := report(t, store, "1.0.0", "alice")
	b2 := report(t, store, "2.0.0", "alice")
	b3 := report(t, store, "3.0.0", "alice")
	for _, b := range []Build{b1, b2} {
		first.tick(ctx)
		first.tick(ctx)
		if _, err := first.Promote(ctx, b.ID, rita, false); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, store, b.ID, StageProd, StatusPassed)
		first.wg.Wait()
	}
	if _, err := first.Rollback(ctx, "inventory", rita, "2.0.0 oversells"); err != nil {
		t.Fatal(err)
	}
	first.wg.Wait()
	if _, err := first.Lock(ctx, "inventory", "qa", "regression env down", time.Hour, rita); err != nil {
		t.Fatal(err)
	}
	// The process dies while build 3's alpha runs: its promotion and
	// stage stay running in the store.
	run := first.begin(ctx, b3, StageAlpha, KindAutomatic, "")
	run.promo.RunEnv = AlphaEnv(b3.ID) // as runAlpha does
	run.advance(ctx, PromotionDeploying, "")
	run.step(ctx, "create environment alpha-b3")
	// A person's promotion run by another replica is not this replica's
	// to end; an automatic one is: only the pipeline leader runs those,
	// and this replica leads now, so the replica that ran it lost the
	// leadership (crashed, or its etcd session ended).
	other, err := store.SavePromotion(ctx, Promotion{BuildID: b2.ID, Service: "inventory", Version: b2.Version, Env: "prod",
		Kind: KindPromote, State: PromotionDeploying, Started: time.Now(), Updated: time.Now(), Runner: "replica-b"})
	if err != nil {
		t.Fatal(err)
	}
	otherAuto, err := store.SavePromotion(ctx, Promotion{BuildID: b3.ID, Service: "inventory", Version: b3.Version, Env: "qa",
		Kind: KindAutomatic, State: PromotionDeploying, Started: time.Now(), Updated: time.Now(), Runner: "replica-b"})
	if err != nil {
		t.Fatal(err)
	}
	before, err := first.Promotions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	second := newPipe("replica-a")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- second.Run(runCtx) }()
	waitStatus(t, store, b3.ID, StageAlpha, StatusFailed)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	locks, pins, err := second.Locks(ctx, "inventory")
	if err != nil || len(locks) != 1 || locks[0].Env != "qa" || len(pins) != 1 || pins[0].BuildID != b1.ID {
		t.Fatalf("after restart: locks %+v pins %+v (%v); want the qa lock and prod pinned to build %d", locks, pins, err, b1.ID)
	}
	after, err := second.Promotions(ctx, 0)
	if err != nil || len(after) != len(before) {
		t.Fatalf("after restart %d promotions, before %d (%v)", len(after), len(before), err)
	}
	for i, pr := range after {
		switch pr.ID {
		case run.promo.ID, otherAuto.ID:
			if pr.State != PromotionFailed || pr.Error != InterruptedReason || pr.Ended.IsZero() {
				t.Errorf("interrupted promotion: %+v", pr)
			}
		case other.ID:
			if pr.State != PromotionDeploying {
				t.Errorf("replica-b's promotion: %s, want still deploying", pr.State)
			}
		default:
			if pr.State != before[i].State {
				t.Errorf("promotion %d: %s, was %s", pr.ID, pr.State, before[i].State)
			}
		}
	}
	v, err := store.Build(ctx, b3.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := v.Stage(StageAlpha); st.Steps[0].Status != StatusFailed || st.Steps[0].Message != InterruptedReason {
		t.Errorf("interrupted stage: %+v", st)
	}
	if st := v.Stage(StageAlpha); len(st.Steps) != 2 || st.Steps[1].Name != "destroy environment alpha-b3" || st.Steps[1].Status != StatusPassed {
		t.Errorf("interrupted alpha's environment: steps %+v, want it destroyed", st.Steps)
	}
	if d := second.dep.(*fakeDeployer).destroyed; !slices.Equal(d, []string{"alpha-b3"}) {
		t.Errorf("environments destroyed after the restart: %v, want alpha-b3", d)
	}
	// The pin and the lock still hold: promotion of build 2 is blocked.
	r, err := second.Review(ctx, b2.ID, rita, false)
	if err != nil || r.CanPromote {
		t.Errorf("review of build 2 after restart: can promote %v (%v), want blocked by the pin", r.CanPromote, err)
	}
}

func TestLockHoldsAutomation(t *testing.T) {
	ctx := context.Background()
	p, store, _ := newTestPipeline(t)
	if _, err := p.Lock(ctx, "inventory", "alpha", "broken dependency", time.Hour, auth.Identity{User: "dave", Role: auth.Developer}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Lock(ctx, "inventory", "prod", "x", time.Hour, auth.Identity{User: "dave", Role: auth.Developer}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("developer locking prod = %v, want forbidden", err)
	}
	b := report(t, store, "1.0.0", "alice")
	p.tick(ctx)
	if got := statusOf(t, store, b.ID, StageAlpha); got != StatusPending {
		t.Fatalf("alpha ran while locked: %s", got)
	}
}

func TestCleanerDestroysAbandonedAlphaEnvs(t *testing.T) {
	p, _, dep := newTestPipeline(t)
	now := time.Now()
	p.now = func() time.Time { return now }
	old := signalman.Deploy{ID: "old", Target: signalman.Target{Service: "inventory", Env: "alpha-b9"}, Started: now.Add(-2 * time.Minute)}
	young := signalman.Deploy{ID: "young", Target: signalman.Target{Service: "inventory", Env: "alpha-b10"}, Started: now.Add(-time.Second)}
	qa := signalman.Deploy{ID: "qa", Target: signalman.Target{Service: "inventory", Env: "qa"}, Started: now.Add(-time.Hour)}
	for _, d := range []signalman.Deploy{old, young, qa} {
		dep.deploys[d.ID] = d
		dep.order = append(dep.order, d.ID)
	}
	p.clean(context.Background())
	p.clean(context.Background())
	if !slices.Equal(dep.destroyed, []string{"alpha-b9"}) {
		t.Fatalf("cleaner destroyed %v, want only the old alpha env once", dep.destroyed)
	}
}
