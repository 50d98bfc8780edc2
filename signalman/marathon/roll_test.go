package marathon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// phasedConfirmer is the registry during a deploy: first at the first
// look, if set, then forward until the replay has seen the rollback request (the DELETE of
// the deployment or the forced PUT), then back.
type phasedConfirmer struct {
	r                    *replay
	first, forward, back []registry.Instance
	calls                int
}

func (c *phasedConfirmer) WaitInstances(_ context.Context, name string, ok func([]registry.Instance) bool) error {
	c.r.mu.Lock()
	backing := false
	for _, req := range c.r.reqs {
		backing = backing || strings.HasPrefix(req, "DELETE ") || strings.HasPrefix(req, "PUT "+putPath+"?force=true")
	}
	c.r.mu.Unlock()
	c.calls++
	in := c.forward
	if c.calls == 1 && c.first != nil {
		in = c.first // the registry when the deploy began
	}
	if backing {
		in = c.back
	}
	ok(in)
	return nil
}

func regsAt(version string, n int) []registry.Instance {
	out := make([]registry.Instance, n)
	for i := range out {
		out[i] = registry.Instance{ID: fmt.Sprintf("inventory-%s-%d", version, i), Name: "inventory", Env: "prod", Version: version,
			Started: time.Date(2016, 3, 1, 11, 20, i, 0, time.UTC)}
	}
	return out
}

// gate fails the instances of one version and passes the others.
type gate struct {
	mu     sync.Mutex
	failOn string
	asked  int
}

func (g *gate) Healthy(_ context.Context, in signalman.Instance) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked++
	if in.Version == g.failOn {
		return fmt.Errorf("%w: %s: GET /healthz: 500 Internal Server Error", signalman.ErrUnhealthy, in.ID)
	}
	return nil
}

const (
	rollDep   = "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"
	deletePth = "/v2/deployments/" + rollDep
)

// TestDeploy runs deploys through the Deployer on recorded Marathon
// answers: the PUT of the new image, labels and upgradeStrategy (golden),
// the deployment followed to its end, the registry and the gate; and the
// two rollbacks, DELETE of a running deployment and PUT of the previous
// definition.
func TestDeploy(t *testing.T) {
	tests := []struct {
		name           string
		timeout        time.Duration
		surge, unavail int
		first          []registry.Instance
		forward, back  []registry.Instance
		failOn         string
		steps          []step
		want           signalman.DeployState
		wantErr        string
		wantSteps      string
	}{
		{
			name: "rolls", surge: 1,
			first: regsAt("1.4.2", 2), forward: regsAt("1.5.0", 2),
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_roll_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_rolling.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2_rolled.json", repeat: true},
			},
			want:      signalman.DeploySucceeded,
			wantSteps: "stop,stop,start,health,start,health",
		},
		{
			name: "one_unavailable_no_surge", unavail: 1,
			first: regsAt("1.4.2", 2), forward: regsAt("1.5.0", 2),
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_roll_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2_rolled.json", repeat: true},
			},
			want:      signalman.DeploySucceeded,
			wantSteps: "stop,stop,start,health,start,health",
		},
		{
			name: "locked_app_fails_busy", surge: 1,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 409, file: "put_locked.json"},
			},
			want:    signalman.DeployFailed,
			wantErr: "orchestrator busy: marathon: app locked by deployments [5cd987cd-85ae-4e70-8df7-f1438367d9cb]",
		},
		{
			name: "stuck_deployment_is_cancelled", surge: 1, timeout: 100 * time.Millisecond,
			back: regsAt("1.4.2", 2),
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_roll_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_rolling.json", repeat: true},
				{method: "DELETE", path: deletePth, status: 200, file: "delete_deployment_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_rollback.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
			},
			want:      signalman.DeployRolledBack,
			wantErr:   "deployment " + rollDep + " did not finish",
			wantSteps: "rollback",
		},
		{
			name: "deployment_over_when_cancelled", surge: 1, timeout: 100 * time.Millisecond,
			back: regsAt("1.4.2", 2),
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_roll_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_rolling.json", repeat: true},
				{method: "DELETE", path: deletePth, status: 404, file: "deployment_missing.json"},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
			},
			want:      signalman.DeployRolledBack,
			wantSteps: "rollback",
		},
		{
			name: "never_registered_is_put_back", surge: 1, timeout: 100 * time.Millisecond,
			forward: regsAt("1.4.2", 2), back: regsAt("1.4.2", 2),
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_roll_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2_rolled.json", repeat: true},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
			},
			want:      signalman.DeployRolledBack,
			wantErr:   "2 instances of inventory@prod at 1.5.0 were not registered",
			wantSteps: "rollback",
		},
		{
			name: "failed_gate_is_put_back", surge: 1, failOn: "1.5.0",
			first: regsAt("1.4.2", 2), forward: regsAt("1.5.0", 2), back: regsAt("1.4.2", 2),
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_roll_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2_rolled.json", repeat: true},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
			},
			want:      signalman.DeployRolledBack,
			wantErr:   "instance failed its health check",
			wantSteps: "stop,stop,start,health,rollback",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, srv := newReplay(t, tc.steps...)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			d, err := New(Config{URL: srv.URL, PollInterval: 5 * time.Millisecond, Timeout: timeout,
				Args:      map[string][]string{"inventory": {"inventory", "--listen", "0.0.0.0:8080", "--env", "{env}", "--version", "{version}"}},
				Confirmer: &phasedConfirmer{r: r, first: tc.first, forward: tc.forward, back: tc.back}})
			if err != nil {
				t.Fatal(err)
			}
			g := &gate{failOn: tc.failOn}
			dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d, Gate: g})
			if err != nil {
				t.Fatal(err)
			}
			res, err := dep.Deploy(context.Background(), signalman.DeployRequest{Target: prod, Version: "1.5.0",
				MaxSurge: &tc.surge, MaxUnavailable: &tc.unavail})
			if err != nil {
				t.Fatal(err)
			}
			if res.State != tc.want || res.FromVersion != "1.4.2" || res.Instances != 2 {
				t.Fatalf("deploy = %+v, want %s from 1.4.2 with 2 instances", res, tc.want)
			}
			if !strings.Contains(res.Error, tc.wantErr) {
				t.Errorf("error %q, want it to say %q", res.Error, tc.wantErr)
			}
			var actions []string
			for _, s := range res.Steps {
				actions = append(actions, s.Action)
			}
			if got := strings.Join(actions, ","); got != tc.wantSteps {
				t.Errorf("steps %s, want %s", got, tc.wantSteps)
			}
			r.check(t)
		})
	}
}
