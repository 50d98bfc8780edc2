package swarm

import (
	"testing"

	"github.com/kplane/kplane/signalman"
)

// A service without kplane labels is found by name: its template in
// Config.Names, else <service>-<env>.
func TestName(t *testing.T) {
	d, err := New(Config{API: &updatingAPI{}, Names: map[string]string{"inventory": "shop_{service}_{env}"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target signalman.Target
		want   string
	}{
		{signalman.Target{Service: "inventory", Env: "prod"}, "shop_inventory_prod"},
		{signalman.Target{Service: "checkpoint", Env: "prod"}, "checkpoint-prod"},
		{signalman.Target{Service: "checkpoint"}, "checkpoint"},
	} {
		if got := d.Name(tc.target); got != tc.want {
			t.Errorf("Name(%v) = %q, want %q", tc.target, got, tc.want)
		}
	}
}
