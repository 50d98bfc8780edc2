package marathon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// Marathon cannot run on the machines kplane is tested on. These tests
// replay responses recorded in the shape of Marathon's published v2 API
// (testdata/*.json) and compare the requests the driver sends with golden
// files (testdata/golden/*.txt); go test -update rewrites those.
var update = flag.Bool("update", false, "rewrite the golden request files")

// step is one scripted exchange: the request the driver must send next and
// the recorded response. A repeated step answers every matching request
// until one does not match, then the script moves on.
type step struct {
	method, path string // path with its query
	status       int
	file         string // in testdata; "" sends an empty body
	repeat       bool
}

type replay struct {
	t     *testing.T
	mu    sync.Mutex
	steps []step
	next  int
	reqs  []string // one line group per request, for the golden file
	errs  []string
}

func newReplay(t *testing.T, steps ...step) (*replay, *httptest.Server) {
	r := &replay{t: t, steps: steps}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *replay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	line := req.Method + " " + req.URL.RequestURI()
	if a := req.Header.Get("Authorization"); a != "" {
		line += "\nAuthorization: " + a
	}
	if len(body) > 0 {
		line += "\n" + string(body)
	}
	if n := len(r.reqs); n == 0 || r.reqs[n-1] != line { // a poll's repeats are one entry
		r.reqs = append(r.reqs, line)
	}
	got := req.Method + " " + req.URL.RequestURI()
	for r.next < len(r.steps) {
		s := r.steps[r.next]
		if s.method+" "+s.path == got {
			if !s.repeat {
				r.next++
			}
			r.respond(w, s)
			return
		}
		if !s.repeat {
			break
		}
		r.next++
	}
	want := "end of script"
	if r.next < len(r.steps) {
		want = r.steps[r.next].method + " " + r.steps[r.next].path
	}
	r.errs = append(r.errs, fmt.Sprintf("unexpected request %s (script expects %s)", got, want))
	http.Error(w, `{"message":"unexpected request"}`, http.StatusTeapot)
}

func (r *replay) respond(w http.ResponseWriter, s step) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	if s.file != "" {
		data, err := os.ReadFile(filepath.Join("testdata", s.file))
		if err != nil {
			r.errs = append(r.errs, err.Error())
			return
		}
		w.Write(data)
	}
}

// check fails the test on script mismatches and compares the requests with
// the golden file of the test.
func (r *replay) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		t.Error(e)
	}
	for ; r.next < len(r.steps); r.next++ {
		if !r.steps[r.next].repeat {
			t.Errorf("script step not reached: %s %s", r.steps[r.next].method, r.steps[r.next].path)
		}
	}
	got := strings.Join(r.reqs, "\n\n") + "\n"
	path := filepath.Join("testdata", "golden", strings.ReplaceAll(t.Name(), "/", "_")+".txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("requests differ from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

const (
	appPath  = "/v2/apps/prod/inventory?embed=app.tasks&embed=app.counts"
	putPath  = "/v2/apps/prod/inventory"
	depsPath = "/v2/deployments"
)

var prod = signalman.Target{Service: "inventory", Env: "prod"}

// staticConfirmer is a registry view that changes to after once asked
// switchAfter times; it stands for the registry Watcher.
type staticConfirmer struct {
	mu    sync.Mutex
	calls int
	insts []registry.Instance
}

func (c *staticConfirmer) WaitInstances(ctx context.Context, name string, ok func([]registry.Instance) bool) error {
	c.mu.Lock()
	c.calls++
	var in []registry.Instance
	for _, i := range c.insts {
		if i.Name == name {
			in = append(in, i)
		}
	}
	c.mu.Unlock()
	if ok(in) {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func regs(env string, n int) []registry.Instance {
	out := make([]registry.Instance, n)
	for i := range out {
		out[i] = registry.Instance{ID: fmt.Sprintf("inventory-%d", i), Name: "inventory", Env: env}
	}
	return out
}

func TestScale(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		n       int
		steps   []step
		wantErr error
		want    signalman.Result
	}{
		{
			name: "up_waits_for_deployment_and_health",
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_running.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_running.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3_unhealthy.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3.json"},
			},
			want: signalman.Result{Target: prod, From: 2, To: 3,
				Started: []string{"prod_inventory.c3d4e5f6-df2b-11e5-9c1a-0242ac110002"}},
		},
		{
			name: "down",
			n:    1,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_3.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_running.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_1.json"},
			},
			want: signalman.Result{Target: prod, From: 3, To: 1, Stopped: []string{
				"prod_inventory.b2c3d4e5-df22-11e5-9c1a-0242ac110002",
				"prod_inventory.c3d4e5f6-df2b-11e5-9c1a-0242ac110002",
			}},
		},
		{
			name: "locked_app_is_busy",
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 409, file: "put_locked.json"},
			},
			wantErr: signalman.ErrBusy,
			want:    signalman.Result{Target: prod, From: 2, To: 2},
		},
		{
			name: "force_overrides_the_lock",
			cfg:  Config{Force: true},
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3.json"},
			},
			want: signalman.Result{Target: prod, From: 2, To: 3,
				Started: []string{"prod_inventory.c3d4e5f6-df2b-11e5-9c1a-0242ac110002"}},
		},
		{
			name: "same_count_is_a_no_op",
			n:    2,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
			},
			want: signalman.Result{Target: prod, From: 2, To: 2},
		},
		{
			name: "unknown_app",
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 404, file: "app_missing.json"},
			},
			wantErr: signalman.ErrUnknownService,
			want:    signalman.Result{Target: prod},
		},
		{
			name: "basic_auth",
			cfg:  Config{Username: "kplane", Password: "s3cret"},
			n:    2,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
			},
			want: signalman.Result{Target: prod, From: 2, To: 2},
		},
		{
			name: "token_auth_rejected",
			cfg:  Config{Token: "eyJhbGciOiJIUzI1NiJ9.e30.test"},
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 401, file: "unauthorized.json"},
			},
			wantErr: errNotAuthorized,
			want:    signalman.Result{Target: prod},
		},
		{
			name: "stuck_deployment_is_reverted",
			cfg:  Config{Timeout: 100 * time.Millisecond},
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_running.json", repeat: true},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
			},
			wantErr: signalman.ErrNotConfirmed,
			want:    signalman.Result{Target: prod, From: 2, To: 2},
		},
		{
			name: "tasks_never_healthy_is_reverted",
			cfg:  Config{Timeout: 100 * time.Millisecond},
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3_staging.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3_unhealthy.json", repeat: true},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
			},
			wantErr: signalman.ErrNotConfirmed,
			want:    signalman.Result{Target: prod, From: 2, To: 2},
		},
		{
			name: "superseded_by_another_change",
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_5_superseded.json"},
			},
			wantErr: errSuperseded,
			want:    signalman.Result{Target: prod, From: 2, To: 2},
		},
		{
			name: "registered_instances_confirm",
			cfg:  Config{Confirmer: &staticConfirmer{insts: append(regs("prod", 3), regs("qa", 1)...)}},
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3.json"},
			},
			want: signalman.Result{Target: prod, From: 2, To: 3,
				Started: []string{"prod_inventory.c3d4e5f6-df2b-11e5-9c1a-0242ac110002"}},
		},
		{
			name: "unregistered_instances_are_not_confirmed",
			cfg:  Config{Timeout: 100 * time.Millisecond, Confirmer: &staticConfirmer{insts: regs("prod", 2)}},
			n:    3,
			steps: []step{
				{method: "GET", path: appPath, status: 200, file: "app_2.json"},
				{method: "PUT", path: putPath, status: 200, file: "put_ok.json"},
				{method: "GET", path: depsPath, status: 200, file: "deployments_other.json"},
				{method: "GET", path: appPath, status: 200, file: "app_3.json"},
				{method: "PUT", path: putPath + "?force=true", status: 200, file: "put_ok.json"},
			},
			wantErr: signalman.ErrNotConfirmed,
			want:    signalman.Result{Target: prod, From: 2, To: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, srv := newReplay(t, tc.steps...)
			cfg := tc.cfg
			cfg.URL = srv.URL
			cfg.PollInterval = 5 * time.Millisecond
			d, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := d.Scale(context.Background(), prod, tc.n)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Scale: %v", err)
			case tc.wantErr == errNotAuthorized:
				if err == nil || !strings.Contains(err.Error(), "not authorized (HTTP 401): Invalid username or password.") {
					t.Fatalf("Scale error = %v, want a clear 401", err)
				}
			case tc.wantErr == errSuperseded:
				if err == nil || !strings.Contains(err.Error(), "another change set 5 instances") {
					t.Fatalf("Scale error = %v, want the superseding change", err)
				}
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Scale error = %v, want %v", err, tc.wantErr)
			}
			if fmt.Sprint(res) != fmt.Sprint(tc.want) {
				t.Errorf("Result = %+v, want %+v", res, tc.want)
			}
			if tc.wantErr == nil && res.NoOp() != (tc.want.From == tc.want.To) {
				t.Errorf("NoOp = %v for %+v", res.NoOp(), res)
			}
			r.check(t)
		})
	}
}

// Markers for errors that have no sentinel and are checked by message.
var (
	errNotAuthorized = errors.New("not authorized")
	errSuperseded    = errors.New("superseded")
)

func TestScaleOnTargetBeingScaledIsBusy(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		http.Error(w, "{}", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	defer close(release)
	d, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := d.Scale(context.Background(), prod, 3); done <- err }()
	<-entered
	if _, err := d.Scale(context.Background(), prod, 4); !errors.Is(err, signalman.ErrBusy) {
		t.Errorf("second Scale = %v, want ErrBusy", err)
	}
	release <- struct{}{}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("first Scale = %v, want the 503", err)
	}
}

func TestScaleRejectsBadInput(t *testing.T) {
	d, err := New(Config{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Scale(context.Background(), prod, -1); !errors.Is(err, signalman.ErrInvalid) {
		t.Errorf("Scale(-1) = %v, want ErrInvalid", err)
	}
	if _, err := d.Scale(context.Background(), signalman.Target{}, 1); !errors.Is(err, signalman.ErrInvalid) {
		t.Errorf("Scale(empty target) = %v, want ErrInvalid", err)
	}
	if _, err := New(Config{URL: "marathon:8080"}); err == nil {
		t.Error("New accepted a URL without scheme")
	}
}

func TestInstancesListsRunningTasksOldestFirst(t *testing.T) {
	r, srv := newReplay(t, step{method: "GET", path: appPath, status: 200, file: "app_3_staging.json"})
	d, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Instances(context.Background(), prod)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range got {
		if in.Version != "1.4.2" || in.Target != prod || in.Started.IsZero() {
			t.Errorf("instance %+v: want version 1.4.2, target %v and a start time", in, prod)
		}
		ids = append(ids, in.ID)
	}
	want := []string{"prod_inventory.a1b2c3d4-df22-11e5-9c1a-0242ac110002", "prod_inventory.b2c3d4e5-df22-11e5-9c1a-0242ac110002"}
	if !slices.Equal(ids, want) {
		t.Errorf("Instances = %v, want %v (the staging task is not running yet)", ids, want)
	}
	r.check(t)
}

func TestAppID(t *testing.T) {
	tests := []struct {
		tmpl   string
		target signalman.Target
		want   string
	}{
		{"", prod, "/prod/inventory"},
		{"", signalman.Target{Service: "inventory"}, "/inventory"},
		{"ticketing/{env}/{service}", prod, "/ticketing/prod/inventory"},
		{"/{service}-{env}", prod, "/inventory-prod"},
	}
	for _, tc := range tests {
		d, err := New(Config{URL: "http://marathon:8080", AppID: tc.tmpl})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.AppID(tc.target); got != tc.want {
			t.Errorf("AppID(%q, %v) = %q, want %q", tc.tmpl, tc.target, got, tc.want)
		}
	}
}

// A service's own template (AppIDs) wins over the driver-wide one.
func TestAppIDPerService(t *testing.T) {
	d, err := New(Config{URL: "http://marathon:8080", AppID: "/ticketing/{env}/{service}",
		AppIDs: map[string]string{"inventory": "shop/{env}/inventory-api"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.AppID(prod); got != "/shop/prod/inventory-api" {
		t.Errorf("inventory: %q", got)
	}
	if got := d.AppID(signalman.Target{Service: "checkpoint", Env: "prod"}); got != "/ticketing/prod/checkpoint" {
		t.Errorf("checkpoint: %q", got)
	}
}
