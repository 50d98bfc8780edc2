// Package signalmantest holds scenarios that every signalman driver must
// pass, run by each driver's own tests against its real backend.
package signalmantest

import (
	"context"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// ZeroFailedRequests is issue #5's zero-downtime scenario: under a
// constant 100 requests/s through the registry client, a rolling deploy of
// target's 4 instances to version v2, then a scale to 8 and back to 2; the
// load generator must report no failed request. d runs the ticketing
// demo's inventory for target at version v1 and deploys v2 as the
// Deployer takes it: an InstanceDriver (kplane starts and stops each
// instance: process, docker) or a Roller (the scheduler rolls: swarm);
// w is the registry watcher the client resolves through. It logs the
// time of each change and returns them.
func ZeroFailedRequests(t *testing.T, ctx context.Context, d signalman.Orchestrator, w *registry.Watcher, target signalman.Target) Timings {
	t.Helper()
	const rate = 100
	if _, err := d.Scale(ctx, target, 4); err != nil {
		t.Fatal(err)
	}

	client := registry.NewClient(registry.TransportConfig{Resolver: w})
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	reports := make(chan loadgen.Report, 1)
	go func() {
		rep, _ := loadgen.Run(loadCtx, loadgen.Config{Target: "http://" + target.Service, Client: client, Rate: rate, Duration: 5 * time.Minute})
		reports <- rep
	}()
	time.Sleep(time.Second) // load established before the changes start

	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d,
		Gate: signalman.HTTPGate{Locator: w, Interval: 100 * time.Millisecond, Successes: 3, Timeout: 15 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	var tm Timings
	start := time.Now()
	res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: target, Version: "v2"})
	if err != nil || res.State != signalman.DeploySucceeded {
		t.Fatalf("deploy: %v, %+v", err, res)
	}
	tm.Deploy = time.Since(start)
	t.Logf("rolling deploy of 4 instances: %s (%d steps, %s per step of one instance)",
		tm.Deploy.Round(time.Millisecond), len(res.Steps), (tm.Deploy / 4).Round(time.Millisecond))
	for _, in := range w.Instances(target.Service) {
		if in.Version != "v2" {
			t.Fatalf("registered after the deploy: %s at %s", in.ID, in.Version)
		}
	}
	insts, err := d.Instances(ctx, target)
	if err != nil || len(insts) != 4 {
		t.Fatalf("instances after the deploy: %+v, %v; want 4", insts, err)
	}
	for _, in := range insts {
		if in.Version != "v2" {
			t.Fatalf("instance %s runs %s after the deploy", in.ID, in.Version)
		}
	}
	for _, n := range []int{8, 2} {
		start := time.Now()
		if _, err := d.Scale(ctx, target, n); err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
		took := time.Since(start)
		if n == 8 {
			tm.ScaleUp = took
			t.Logf("scale to 8: %s (%s per instance started)", took.Round(time.Millisecond), (took / 4).Round(time.Millisecond))
		} else {
			tm.ScaleDown = took
			t.Logf("scale to 2: %s", took.Round(time.Millisecond))
		}
	}
	if got := len(w.Instances(target.Service)); got != 2 {
		t.Fatalf("%d instances registered after scaling to 2", got)
	}
	time.Sleep(time.Second)
	stopLoad()
	rep := <-reports
	t.Logf("load: %s", rep)
	if want := int(rep.Elapsed.Seconds() * rate / 2); rep.OK < want {
		t.Fatalf("only %d requests answered in %s, want at least %d: the load did not run", rep.OK, rep.Elapsed, want)
	}
	if rep.Failed != 0 {
		t.Fatalf("%d failed requests during the deploy and scaling: %v", rep.Failed, rep.ByStatus)
	}
	tm.Load = rep
	return tm
}

// Timings are what ZeroFailedRequests measured: the whole rolling deploy
// of 4 instances (a step of one instance is a quarter of it), the scale
// 4 → 8 (4 instances started) and 8 → 2, and the load's report.
type Timings struct {
	Deploy, ScaleUp, ScaleDown time.Duration
	Load                       loadgen.Report
}
