package swarm

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// TestRollOnRealSwarm deploys through the Deployer on a real single-node
// swarm: the ticketing demo image under two tags (1.0.0, 2.0.0) rolls
// from 1.0.0 to 2.0.0, each new instance registered at 2.0.0 and gated
// over HTTP; then a version whose tasks run but never register (the
// sleeper image tagged "bad") is rolled back to 2.0.0 by kplane, and one
// whose tasks exit at once (the sleeper with the argument "crash") by
// Swarm itself, which kplane follows.
func TestRollOnRealSwarm(t *testing.T) {
	cli := engine(t)
	sfx := suffix()
	repo := "kplane-swarm-roll-" + sfx
	tagDemo(t, cli, repo, "1.0.0", "2.0.0")
	sleeperImage(t, cli, repo+":bad")
	if err := cli.ImageTag(t.Context(), repo+":bad", repo+":crash"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, repo+":crash", image.RemoveOptions{}); err != nil {
			t.Errorf("untag %s:crash: %v", repo, err)
		}
	})

	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(wctx) }()
	t.Cleanup(func() { stopWatch(); <-watchDone })
	<-w.Ready()

	env := "roll-" + sfx
	target := signalman.Target{Service: "inventory", Env: env}
	args := []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(srv.Endpoints(), ","),
		"--env", "{env}", "--version", "{version}"}
	expand := func(v string) []string {
		out := slices.Clone(args)
		for i, a := range out {
			out[i] = strings.NewReplacer("{env}", env, "{version}", v).Replace(a)
		}
		return out
	}
	two := uint64(2)
	grace := ticketingDrain
	id := createServiceSpec(t, cli, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "inventory-" + env,
			Labels: map[string]string{LabelService: "inventory", LabelEnv: env, LabelVersion: "1.0.0"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: repo + ":1.0.0", StopGracePeriod: &grace, Args: expand("1.0.0")},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &two}},
	})
	registered := func(version string) int {
		n := 0
		for _, in := range w.Instances("inventory") {
			if in.Env == env && in.Version == version {
				n++
			}
		}
		return n
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	if err := w.WaitInstances(ctx, "inventory", func([]registry.Instance) bool { return registered("1.0.0") == 2 }); err != nil {
		t.Fatalf("the 1.0.0 instances did not register: %v", err)
	}

	d, err := New(Config{API: cli, Confirmer: w, Timeout: 25 * time.Second, PollInterval: 200 * time.Millisecond,
		Args: map[string][]string{"inventory": args}, Monitor: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	awaitReplicas(t, cli, id, 2) // registered may come before Swarm reports the task running
	if insts, err := d.Instances(ctx, target); err != nil || len(insts) != 2 || insts[0].Version != "1.0.0" {
		t.Fatalf("Instances = %+v, %v; want 2 at 1.0.0", insts, err)
	}
	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d,
		Gate: signalman.HTTPGate{Locator: w, Successes: 2, Timeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("good version rolls", func(t *testing.T) {
		res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: target, Version: "2.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != signalman.DeploySucceeded || res.FromVersion != "1.0.0" || res.Instances != 2 {
			t.Fatalf("deploy = %+v", res)
		}
		// Deploy returned, so the registry agrees.
		if n, old := registered("2.0.0"), registered("1.0.0"); n != 2 || old != 0 {
			t.Errorf("registered: %d at 2.0.0, %d at 1.0.0; want 2 and 0", n, old)
		}
		count := map[string]int{}
		for _, s := range res.Steps {
			if s.Outcome != signalman.OutcomeOK {
				t.Errorf("step %+v", s)
			}
			count[s.Action]++
		}
		if count[signalman.ActionStart] != 2 || count[signalman.ActionHealth] != 2 || count[signalman.ActionStop] != 2 {
			t.Errorf("steps %v, want 2 starts, 2 health gates, 2 stops", count)
		}
		svc, _, err := cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uc := svc.Spec.UpdateConfig
		if got := noDigest(svc.Spec.TaskTemplate.ContainerSpec.Image); got != repo+":2.0.0" {
			t.Errorf("image %s, want %s:2.0.0", got, repo)
		}
		if uc == nil || uc.Order != swarm.UpdateOrderStartFirst || uc.Parallelism != 1 || uc.FailureAction != swarm.UpdateFailureActionRollback {
			t.Errorf("UpdateConfig %+v, want start-first, parallelism 1, failure action rollback", uc)
		}
	})

	t.Run("bad version is rolled back", func(t *testing.T) {
		res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: target, Version: "bad", MaxSurge: ptr(0), MaxUnavailable: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != signalman.DeployRolledBack || res.FromVersion != "2.0.0" || !strings.Contains(res.Error, "not registered") {
			t.Fatalf("deploy = %+v, want rolled back from an unregistered version", res)
		}
		if !slices.ContainsFunc(res.Steps, func(s signalman.Step) bool {
			return s.Action == signalman.ActionRollback && s.Version == "2.0.0" && s.Outcome == signalman.OutcomeOK
		}) {
			t.Errorf("no rollback step to 2.0.0 in %+v", res.Steps)
		}
		if n := registered("2.0.0"); n != 2 {
			t.Errorf("%d instances at 2.0.0 after the rollback, want 2", n)
		}
		svc, _, err := cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := noDigest(svc.Spec.TaskTemplate.ContainerSpec.Image); got != repo+":2.0.0" {
			t.Errorf("image after rollback %s, want %s:2.0.0", got, repo)
		}
		if v := version(svc.Spec); v != "2.0.0" {
			t.Errorf("version label after rollback %q", v)
		}
		awaitReplicas(t, cli, id, 2)
	})

	t.Run("crashing version is rolled back by swarm", func(t *testing.T) {
		res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: target, Version: "crash", MaxSurge: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != signalman.DeployRolledBack || res.FromVersion != "2.0.0" || !strings.Contains(res.Error, "swarm rolled the update back") {
			t.Fatalf("deploy = %+v, want rolled back by swarm", res)
		}
		if n := registered("2.0.0"); n != 2 {
			t.Errorf("%d instances at 2.0.0 after the rollback, want 2", n)
		}
		svc, _, err := cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := noDigest(svc.Spec.TaskTemplate.ContainerSpec.Image); got != repo+":2.0.0" {
			t.Errorf("image after rollback %s, want %s:2.0.0", got, repo)
		}
		awaitReplicas(t, cli, id, 2)
	})
}

func ptr(n int) *int { return &n }
