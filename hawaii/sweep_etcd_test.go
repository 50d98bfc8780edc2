package hawaii

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
)

// Replicas sharing etcd and one SQL store: replica A crashes (its client
// goes away without revoking its session, so its lease expires) while it
// owns a running deploy and a running prod promotion. Replica B, sweeping,
// marks both interrupted once A's key has been gone for the grace period,
// and never touches the running work of live replicas: C's, or its own.
func TestSweepersEndTheWorkOfACrashedReplica(t *testing.T) {
	const ttl, grace = 2 * time.Second, 3 * time.Second
	etcd := etcdtest.Start(t)
	ctx := t.Context()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	deploys, promos := signalman.NewSQLDeployStore(db), NewSQLStore(db, nil)

	register := func(cli *clientv3.Client, name string) *signalman.Presence {
		t.Helper()
		p, err := signalman.NewPresence(signalman.PresenceConfig{Client: cli, Name: name, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Register(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(name string, f func(context.Context) error) {
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f(rctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	cliA := etcd.Client(t)
	a := register(cliA, "host-a 127.0.0.1:0 a1a1a1a1")
	b := register(etcd.Client(t), "host-a 127.0.0.1:0 b2b2b2b2") // same host and port, another process
	c := register(etcd.Client(t), "host-c 10.0.0.3:8080 c3c3c3c3")
	run("presence b", b.Run)
	run("presence c", c.Run)

	work := map[string]Promotion{}
	for i, owner := range []string{a.Name(), b.Name(), c.Name()} {
		id := "d-" + owner[len(owner)-8:]
		if err := deploys.Create(ctx, signalman.Deploy{ID: id, Target: signalman.Target{Service: "inventory", Env: "prod"},
			Version: "2.0", Instances: 2, MaxSurge: 1, State: signalman.DeployRunning, Started: time.Now(), Steps: []signalman.Step{}}, owner); err != nil {
			t.Fatal(err)
		}
		if err := deploys.AddStep(ctx, id, 0, signalman.Step{Time: time.Now(), Action: signalman.ActionStart, Instance: "inventory-prod-3",
			Version: "2.0", Outcome: signalman.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
		_, pr := runningProd(t, promos, "g"+string(rune('1'+i)), owner)
		work[id] = pr
	}

	absence, err := signalman.NewAbsence(signalman.AbsenceConfig{Replicas: b, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := signalman.NewSweeper(signalman.SweeperConfig{Store: deploys, Replicas: absence, Self: b.Name(), Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := NewSweeper(SweeperConfig{Store: promos, Replicas: absence, Self: b.Name(), Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run("deploy sweeper", ds.Run)
	run("promotion sweeper", ps.Run)

	// While every replica lives, nothing is swept, however long it runs.
	time.Sleep(grace + time.Second)
	assertRunning := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if d, err := deploys.Get(ctx, id); err != nil || d.State != signalman.DeployRunning || len(d.Steps) != 1 {
				t.Errorf("deploy %s: %+v, %v; want running, untouched", id, d, err)
			}
			prs, err := promos.Promotions(ctx, PromotionQuery{BuildID: work[id].BuildID})
			if err != nil || len(prs) != 1 || prs[0].State != PromotionDeploying {
				t.Errorf("promotion of %s: %+v, %v; want deploying", id, prs, err)
			}
		}
	}
	assertRunning("d-a1a1a1a1", "d-b2b2b2b2", "d-c3c3c3c3")

	crashed := time.Now()
	cliA.Close() // A's machine is gone: no revoke, the lease runs out
	gone := signalman.ReplicaGone(a.Name())
	var d signalman.Deploy
	var pr Promotion
	for deadline := crashed.Add(ttl + grace + 15*time.Second); ; time.Sleep(50 * time.Millisecond) {
		if d, err = deploys.Get(ctx, "d-a1a1a1a1"); err != nil {
			t.Fatal(err)
		}
		prs, err := promos.Promotions(ctx, PromotionQuery{BuildID: work["d-a1a1a1a1"].BuildID})
		if err != nil || len(prs) != 1 {
			t.Fatalf("promotions: %v, %v", prs, err)
		}
		pr = prs[0]
		if d.State.Done() && pr.State.Done() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after A crashed: deploy %s, promotion %s; want both failed", time.Since(crashed).Round(time.Millisecond), d.State, pr.State)
		}
	}
	took := time.Since(crashed)
	t.Logf("A's work ended %s after it crashed (lease %s, grace %s)", took.Round(time.Millisecond), ttl, grace)
	if took < grace {
		t.Errorf("A's work ended %s after it crashed, before the grace of %s", took, grace)
	}
	last := d.Steps[len(d.Steps)-1]
	if d.State != signalman.DeployFailed || d.Error != gone || len(d.Steps) != 2 || last.Action != signalman.ActionInterrupt || last.Error != gone {
		t.Errorf("A's deploy: %+v", d)
	}
	if pr.State != PromotionFailed || pr.Error != gone {
		t.Errorf("A's promotion: %+v", pr)
	}
	v, err := promos.Build(ctx, pr.BuildID)
	if err != nil {
		t.Fatal(err)
	}
	if st := v.Stage(StageProd); st.Status != StatusFailed || st.Steps[0].Message != gone {
		t.Errorf("A's prod stage: %+v", st)
	}
	events, err := promos.AuditEvents(ctx, AuditQuery{BuildID: pr.BuildID})
	if err != nil || len(events) != 1 || events[0].Action != ActionStageChanged {
		t.Errorf("audit of A's promotion: %+v, %v; want one stage.changed event", events, err)
	}
	assertRunning("d-b2b2b2b2", "d-c3c3c3c3")
}
