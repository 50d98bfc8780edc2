package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/signalman"
)

// instantDeployer finishes every deploy at once, successfully.
type instantDeployer struct {
	mu sync.Mutex
	d  map[string]signalman.Deploy
}

func (f *instantDeployer) Deploy(_ context.Context, r signalman.DeployRequest) (signalman.Deploy, error) {
	return f.Begin(r)
}

func (f *instantDeployer) Begin(r signalman.DeployRequest) (signalman.Deploy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := signalman.Deploy{ID: fmt.Sprintf("dep%d", len(f.d)+1), Target: r.Target, Version: r.Version, State: signalman.DeploySucceeded}
	f.d[d.ID] = d
	return d, nil
}

func (f *instantDeployer) Get(_ context.Context, id string) (signalman.Deploy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d[id], nil
}

func (f *instantDeployer) Subscribe(context.Context, string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	return ch, func() {}, nil
}

func (f *instantDeployer) List(context.Context, signalman.Target, int) ([]signalman.Deploy, error) {
	return nil, nil
}

func (f *instantDeployer) CreateEnv(context.Context, string, []signalman.EnvService) ([]signalman.Deploy, error) {
	return nil, nil
}

func (f *instantDeployer) DestroyEnv(context.Context, string) error { return nil }

func newPipelineEnv(t *testing.T) (*env, hawaii.Store, int64, int64) {
	t.Helper()
	ctx := t.Context()
	store := hawaii.NewMemoryStore(nil)
	p, err := hawaii.NewPipeline(hawaii.PipelineConfig{Store: store, Deployer: &instantDeployer{d: map[string]signalman.Deploy{}},
		Pipelines: []hawaii.ServicePipeline{{Service: "inventory"}}})
	if err != nil {
		t.Fatal(err)
	}
	rep := func(version, committer string, green bool) int64 {
		b, _, err := store.Report(ctx, hawaii.Build{Service: "inventory", Version: version, Image: "inventory:" + version,
			SCMRevision: "r" + version, Committer: committer, Timestamp: time.Now().UTC(), GUID: "g" + version})
		if err != nil {
			t.Fatal(err)
		}
		st := hawaii.StatusFailed
		if green {
			st = hawaii.StatusPassed
		}
		for _, s := range []hawaii.Stage{hawaii.StageAlpha, hawaii.StageQA} {
			if _, err := store.SetStage(ctx, hawaii.StageRecord{BuildID: b.ID, Stage: s, Status: st}); err != nil {
				t.Fatal(err)
			}
		}
		return b.ID
	}
	green := rep("1.0.0", "releaser-user", true)
	red := rep("1.1.0", "someone", false)
	e := newEnv(t, func(c *Config) { c.Pipeline = p })
	return e, store, green, red
}

func TestPromoteAPI(t *testing.T) {
	e, store, green, red := newPipelineEnv(t)
	promote := func(id int64, role auth.Role, override bool) response {
		return e.do(nil, http.MethodPost, fmt.Sprintf("/api/v1/builds/%d/promote", id), e.tokens[role],
			jsonBody(map[string]any{"to": "prod", "override": override}))
	}
	type blocked struct {
		Code     string           `json:"code"`
		Blockers []hawaii.Blocker `json:"blockers"`
	}
	codes := func(r response) []string {
		var b blocked
		if err := json.Unmarshal([]byte(r.body), &b); err != nil {
			t.Fatalf("body %q: %v", r.body, err)
		}
		var out []string
		for _, x := range b.Blockers {
			out = append(out, x.Code)
		}
		return out
	}
	if r := promote(green, auth.Developer, false); r.status != http.StatusForbidden {
		t.Fatalf("developer promote: %d %s, want 403", r.status, r.body)
	}
	if r := promote(green, auth.Releaser, false); r.status != http.StatusForbidden || fmt.Sprint(codes(r)) != "[separation_of_duties]" {
		t.Fatalf("committer promote: %d %s, want 403 separation of duties", r.status, r.body)
	}
	if r := promote(red, auth.Admin, false); r.status != http.StatusConflict || fmt.Sprint(codes(r)) != "[alpha_not_green qa_not_green]" {
		t.Fatalf("red build promote: %d %s, want 409 with both stages", r.status, r.body)
	}
	if r := e.do(nil, http.MethodPost, fmt.Sprintf("/api/v1/builds/%d/promote", green), e.tokens[auth.Admin], jsonBody(map[string]any{"to": "qa"})); r.status != http.StatusBadRequest {
		t.Fatalf("promote to qa: %d, want 400", r.status)
	}
	r := e.do(nil, http.MethodGet, fmt.Sprintf("/api/v1/builds/%d/review", green), e.tokens[auth.Developer], nil)
	var rev hawaii.Review
	if err := json.Unmarshal([]byte(r.body), &rev); err != nil || r.status != http.StatusOK || rev.CanPromote || rev.Blockers[0].Code != hawaii.BlockRole {
		t.Fatalf("developer's review: %d %s", r.status, r.body)
	}
	r = promote(green, auth.Admin, false)
	if r.status != http.StatusAccepted || r.header.Get("Location") == "" {
		t.Fatalf("admin promote: %d %s, want 202 with the deploy's location", r.status, r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := store.Build(t.Context(), green)
		if err != nil {
			t.Fatal(err)
		}
		if v.Stage(hawaii.StageProd).Status == hawaii.StatusPassed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prod stage = %s", v.Stage(hawaii.StageProd).Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := e.do(nil, http.MethodPut, "/api/v1/locks/inventory/prod", e.tokens[auth.Developer], jsonBody(map[string]string{"reason": "sale", "duration": "1h"})); r.status != http.StatusForbidden {
		t.Fatalf("developer locking prod: %d, want 403", r.status)
	}
	if r := e.do(nil, http.MethodPut, "/api/v1/locks/inventory/prod", e.tokens[auth.Releaser], jsonBody(map[string]string{"reason": "sale", "duration": "1h"})); r.status != http.StatusOK {
		t.Fatalf("releaser locking prod: %d %s", r.status, r.body)
	}
	if r := e.do(nil, http.MethodGet, "/api/v1/locks", e.tokens[auth.Viewer], nil); r.status != http.StatusOK || !json.Valid([]byte(r.body)) {
		t.Fatalf("locks: %d %s", r.status, r.body)
	}
}
