package web

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/registry"
)

func TestPrometheusSD(t *testing.T) {
	e := newEnv(t)
	e.source.Set(append(demoServices(),
		registry.Service{Name: "checkout", Instances: []registry.Instance{
			{ID: "checkout-qa-1", Name: "checkout", Addr: "127.0.0.1:43001", Env: "qa"},
			{ID: "checkout-starting", Name: "checkout", Env: "qa"}, // no address yet: nothing to scrape
		}})...)
	inv1 := sdGroup{Targets: []string{"127.0.0.1:41001"}, Labels: map[string]string{"service": "inventory", "env": "dev", "instance": "inventory-1", "version": "1.4.2"}}
	inv2 := sdGroup{Targets: []string{"127.0.0.1:41002"}, Labels: map[string]string{"service": "inventory", "env": "dev", "instance": "inventory-2", "version": "1.4.2"}}
	cp := sdGroup{Targets: []string{"127.0.0.1:42001"}, Labels: map[string]string{"service": "checkpoint", "env": "dev", "instance": "checkpoint-1", "version": "0.9.0"}}
	co := sdGroup{Targets: []string{"127.0.0.1:43001"}, Labels: map[string]string{"service": "checkout", "env": "qa", "instance": "checkout-qa-1"}}
	for _, tc := range []struct {
		name, path string
		want       []sdGroup
	}{
		{"every instance with an address, by service then id", "/api/v1/sd/prometheus", []sdGroup{co, cp, inv1, inv2}},
		{"one env", "/api/v1/sd/prometheus?env=qa", []sdGroup{co}},
		{"an env with nothing in it", "/api/v1/sd/prometheus?env=prod", []sdGroup{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(nil, http.MethodGet, tc.path, e.tokens[auth.Viewer], nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %d %s", tc.path, r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q, want JSON (Prometheus refuses anything else)", ct)
			}
			var got []sdGroup
			if err := json.Unmarshal([]byte(r.body), &got); err != nil || got == nil {
				t.Fatalf("body %q is not a JSON array: %v", r.body, err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tc.want)
			if string(gb) != string(wb) {
				t.Errorf("GET %s:\n got %s\nwant %s", tc.path, gb, wb)
			}
		})
	}

	// Prometheus keeps its last good target list when a refresh fails, so
	// an empty registry must answer [] rather than an error or null.
	e.source.Set()
	if r := e.do(nil, http.MethodGet, "/api/v1/sd/prometheus", e.tokens[auth.Viewer], nil); r.status != http.StatusOK || r.body != "[]" {
		t.Errorf("empty registry: %d %q, want 200 []", r.status, r.body)
	}
	if r := e.do(nil, http.MethodGet, "/api/v1/sd/prometheus", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", r.status)
	}
}
