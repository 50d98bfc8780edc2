package main

import (
	"reflect"
	"testing"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
)

type fixedServices []registry.Service

func (f fixedServices) Services() []registry.Service { return f }

// HAWAII runs inventory in alpha, qa and prod beside the demo's dev
// environment; only dev's instances are the autoscaler's capacity and load.
func TestEnvRegistryShowsOneEnvironment(t *testing.T) {
	all := fixedServices{
		{Name: "checkpoint", Instances: []registry.Instance{{ID: "checkpoint-dev-1", Env: "dev"}}},
		{Name: "inventory", Instances: []registry.Instance{
			{ID: "inventory-dev-1", Env: "dev"},
			{ID: "inventory-qa-1", Env: "qa"},
			{ID: "inventory-dev-2", Env: "dev"},
			{ID: "inventory-alpha-b1-1", Env: "alpha-b1"},
		}},
		{Name: "payments", Instances: []registry.Instance{{ID: "payments-prod-1", Env: "prod"}}},
	}
	got := envRegistry{all, "dev"}.Services()
	want := []registry.Service{
		{Name: "checkpoint", Instances: []registry.Instance{{ID: "checkpoint-dev-1", Env: "dev"}}},
		{Name: "inventory", Instances: []registry.Instance{{ID: "inventory-dev-1", Env: "dev"}, {ID: "inventory-dev-2", Env: "dev"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestPromQueriesOverlayTheDefaults(t *testing.T) {
	if promQueries(nil) != nil {
		t.Fatal("no custom queries must keep the source's defaults (nil)")
	}
	q := promQueries(map[string]string{"qps": `sum by (service)(rate(http_requests_total[15s]))`})
	if q[scout.QPS] != `sum by (service)(rate(http_requests_total[15s]))` {
		t.Fatalf("qps query = %q", q[scout.QPS])
	}
	if q[scout.CPU] == "" || q[scout.Memory] == "" {
		t.Fatalf("the other metrics lost their default queries: %v", q)
	}
}
