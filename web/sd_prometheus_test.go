package web

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/promtest"
	"github.com/kplane/kplane/registry"
)

// A real Prometheus (Debian's 2.42) configured with http_sd_configs and a
// viewer's token finds the registered instances with their labels, and
// follows the registry when it changes.
func TestPrometheusDiscoversRegistry(t *testing.T) {
	e := newEnv(t)
	p := promtest.Start(t, promtest.Config{HTTPSD: &promtest.HTTPSD{
		URL:   e.ts.URL + "/api/v1/sd/prometheus?env=dev",
		Token: e.tokens[auth.Viewer],
	}})
	client, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	prom := v1.NewAPI(client)

	// targets maps instance label -> "address service env version" of
	// the http_sd job's active targets.
	targets := func() (map[string]string, error) {
		res, err := prom.Targets(t.Context())
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, at := range res.Active {
			if at.ScrapePool != "http_sd" {
				continue
			}
			l := at.Labels
			out[string(l["instance"])] = fmt.Sprintf("%s %s %s %s", at.DiscoveredLabels["__address__"], l["service"], l["env"], l["version"])
		}
		return out, nil
	}
	waitTargets := func(want map[string]string) time.Duration {
		t.Helper()
		t0 := time.Now()
		var got map[string]string
		for {
			got, err = targets()
			if err == nil && maps.Equal(got, want) {
				return time.Since(t0)
			}
			if time.Since(t0) > 20*time.Second {
				t.Fatalf("Prometheus's targets %v (err %v), want %v\n%s", got, err, want, p.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	took := waitTargets(map[string]string{
		"inventory-1":  "127.0.0.1:41001 inventory dev 1.4.2",
		"inventory-2":  "127.0.0.1:41002 inventory dev 1.4.2",
		"checkpoint-1": "127.0.0.1:42001 checkpoint dev 0.9.0",
	})
	t.Logf("Prometheus listed the registered instances %s after it started", took.Round(time.Millisecond))

	// inventory-2 deregisters, inventory-3 registers, and a qa instance
	// stays outside the ?env=dev job.
	svcs := demoServices()
	inv := svcs[0].Instances
	svcs[0].Instances = []registry.Instance{inv[0], {ID: "inventory-3", Name: "inventory", Addr: "127.0.0.1:41003", Version: "1.5.0", Env: "dev"}}
	svcs = append(svcs, registry.Service{Name: "checkout", Instances: []registry.Instance{{ID: "checkout-qa-1", Name: "checkout", Addr: "127.0.0.1:43001", Env: "qa"}}})
	e.source.Set(svcs...)
	took = waitTargets(map[string]string{
		"inventory-1":  "127.0.0.1:41001 inventory dev 1.4.2",
		"inventory-3":  "127.0.0.1:41003 inventory dev 1.5.0",
		"checkpoint-1": "127.0.0.1:42001 checkpoint dev 0.9.0",
	})
	t.Logf("Prometheus followed a registry change in %s", took.Round(time.Millisecond))
}
