package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/signalman"
)

// memDriver is an in-memory InstanceDriver whose health gate waits for
// release, so a test can watch a deploy while it runs.
type memDriver struct {
	mu      sync.Mutex
	n       int
	insts   map[signalman.Target][]signalman.Instance
	release chan struct{}
}

var _ signalman.InstanceDriver = (*memDriver)(nil)

func (m *memDriver) Scale(context.Context, signalman.Target, int) (signalman.Result, error) {
	return signalman.Result{}, nil
}

func (m *memDriver) Instances(_ context.Context, t signalman.Target) ([]signalman.Instance, error) {
	if t.Service != "inventory" {
		return nil, fmt.Errorf("%w: %q", signalman.ErrUnknownService, t.Service)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]signalman.Instance(nil), m.insts[t]...), nil
}

func (m *memDriver) Start(_ context.Context, t signalman.Target, v string) (signalman.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	in := signalman.Instance{ID: fmt.Sprintf("%s-%d", t.Service, m.n), Target: t, Version: v}
	m.insts[t] = append(m.insts[t], in)
	return in, nil
}

func (m *memDriver) Stop(_ context.Context, t signalman.Target, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, in := range m.insts[t] {
		if in.ID == id {
			m.insts[t] = append(m.insts[t][:i], m.insts[t][i+1:]...)
			return nil
		}
	}
	return signalman.ErrUnknownInstance
}

func (m *memDriver) DestroyEnv(_ context.Context, env string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t := range m.insts {
		if t.Env == env {
			delete(m.insts, t)
		}
	}
	return nil
}

func (m *memDriver) Healthy(ctx context.Context, _ signalman.Instance) error {
	select {
	case <-m.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newDeployEnv(t *testing.T) (*env, *memDriver) {
	m := &memDriver{insts: map[signalman.Target][]signalman.Instance{}, release: make(chan struct{})}
	m.insts[signalman.Target{Service: "inventory", Env: "qa"}] = []signalman.Instance{{ID: "inventory-0", Version: "1.0"}}
	d, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: m, Gate: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Begin needs Run to have started: until then it refuses even to
	// validate.
	for _, err := d.Begin(signalman.DeployRequest{}); !errors.Is(err, signalman.ErrInvalid); _, err = d.Begin(signalman.DeployRequest{}) {
		time.Sleep(5 * time.Millisecond)
	}
	return newEnv(t, func(c *Config) { c.Deploys = d }), m
}

func TestDeployAPI(t *testing.T) {
	e, m := newDeployEnv(t)
	dev, rel := e.tokens[auth.Developer], e.tokens[auth.Releaser]
	for name, tc := range map[string]struct {
		token, body string
		status      int
		code        string
	}{
		"viewer":          {e.tokens[auth.Viewer], `{"service":"inventory","env":"qa","version":"2.0"}`, http.StatusForbidden, "forbidden"},
		"developer, prod": {dev, `{"service":"inventory","env":"prod","version":"2.0"}`, http.StatusForbidden, "forbidden"},
		"not JSON":        {dev, `service=inventory`, http.StatusBadRequest, "invalid"},
		"unknown field":   {dev, `{"service":"inventory","env":"qa","version":"2","surge":1}`, http.StatusBadRequest, "invalid"},
		"no env":          {dev, `{"service":"inventory","version":"2.0"}`, http.StatusBadRequest, "invalid"},
		"no version":      {dev, `{"service":"inventory","env":"qa"}`, http.StatusBadRequest, "invalid"},
		"no room":         {dev, `{"service":"inventory","env":"qa","version":"2","maxSurge":0,"maxUnavailable":0}`, http.StatusBadRequest, "invalid"},
		"unknown service": {dev, `{"service":"payments","env":"qa","version":"2.0"}`, http.StatusNotFound, "not_found"},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(nil, "POST", "/api/v1/deploys", tc.token, strings.NewReader(tc.body))
			if r.status != tc.status || decodeError(t, r).Code != tc.code {
				t.Fatalf("= %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}

	r := e.do(nil, "POST", "/api/v1/deploys", dev, strings.NewReader(`{"service":"inventory","env":"qa","version":"2.0"}`))
	var dep signalman.Deploy
	if err := json.Unmarshal([]byte(r.body), &dep); err != nil || r.status != http.StatusAccepted || dep.State != signalman.DeployRunning || dep.By != "developer-user" {
		t.Fatalf("deploy = %d %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/deploys/"+dep.ID {
		t.Fatalf("Location = %q", loc)
	}
	r = e.do(nil, "POST", "/api/v1/deploys", rel, strings.NewReader(`{"service":"inventory","env":"qa","version":"3.0"}`))
	if r.status != http.StatusConflict || decodeError(t, r).Code != "busy" {
		t.Fatalf("second deploy = %d %s, want 409 busy", r.status, r.body)
	}
	r = e.do(nil, "DELETE", "/api/v1/envs/qa", dev, nil)
	if r.status != http.StatusConflict {
		t.Fatalf("destroy during a deploy = %d %s, want 409", r.status, r.body)
	}

	// The event stream follows the deploy live, then ends with it.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.ts.URL+"/api/v1/deploys/"+dep.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[auth.Viewer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("events = %d %s", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	var final signalman.Deploy
	released := false
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
			if !released {
				// The start step arrived while the gate holds.
				close(m.release)
				released = true
			}
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && events[len(events)-1] == "done" {
			if err := json.Unmarshal([]byte(data), &final); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := "step step step done" // start, health, stop of the one old instance
	if got := strings.Join(events, " "); got != want || final.State != signalman.DeploySucceeded {
		t.Fatalf("events %q (state %s), want %q and succeeded", got, final.State, want)
	}

	r = e.do(nil, "GET", "/api/v1/deploys/"+dep.ID, e.tokens[auth.Viewer], nil)
	if err := json.Unmarshal([]byte(r.body), &final); err != nil || len(final.Steps) != 3 || final.Steps[0].Action != "start" {
		t.Fatalf("get = %d %s", r.status, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/deploys?service=inventory&env=qa", e.tokens[auth.Viewer], nil)
	var list struct{ Deploys []signalman.Deploy }
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Deploys) != 1 || list.Deploys[0].ID != dep.ID {
		t.Fatalf("list = %d %s", r.status, r.body)
	}
	if r := e.do(nil, "GET", "/api/v1/deploys/d-nope", e.tokens[auth.Viewer], nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown deploy = %d", r.status)
	}

	for name, tc := range map[string]struct {
		token, env string
		status     int
	}{
		"developer, qa":   {dev, "qa", http.StatusNoContent},
		"releaser, prod":  {rel, "prod", http.StatusForbidden},
		"admin, prod":     {e.tokens[auth.Admin], "prod", http.StatusNoContent},
		"viewer, alpha":   {e.tokens[auth.Viewer], "alpha-1", http.StatusForbidden},
		"bad environment": {dev, "Alpha_1", http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			if r := e.do(nil, "DELETE", "/api/v1/envs/"+tc.env, tc.token, nil); r.status != tc.status {
				t.Fatalf("= %d %s, want %d", r.status, r.body, tc.status)
			}
		})
	}
	if insts, _ := m.Instances(t.Context(), signalman.Target{Service: "inventory", Env: "qa"}); len(insts) != 0 {
		t.Fatalf("qa not destroyed: %+v", insts)
	}
}
