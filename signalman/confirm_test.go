package signalman_test

import (
	"testing"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

func TestRegisteredSince(t *testing.T) {
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	want := []signalman.Instance{{ID: "inventory-dev-1", Started: start}, {ID: "inventory-dev-2", Started: start}}
	reg := func(id string, at time.Time) registry.Instance { return registry.Instance{ID: id, Started: at} }
	for name, tc := range map[string]struct {
		registered []registry.Instance
		want       bool
	}{
		"both registered after start":   {[]registry.Instance{reg("inventory-dev-1", start.Add(time.Second)), reg("inventory-dev-2", start)}, true},
		"one missing":                   {[]registry.Instance{reg("inventory-dev-1", start.Add(time.Second))}, false},
		"stale key of a crashed holder": {[]registry.Instance{reg("inventory-dev-1", start.Add(-time.Minute)), reg("inventory-dev-2", start)}, false},
		"within the clock slack":        {[]registry.Instance{reg("inventory-dev-1", start.Add(-500*time.Millisecond)), reg("inventory-dev-2", start)}, true},
		"others do not count":           {[]registry.Instance{reg("inventory-dev-3", start), reg("inventory-dev-2", start)}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := signalman.RegisteredSince(want)(tc.registered); got != tc.want {
				t.Fatalf("RegisteredSince = %v, want %v", got, tc.want)
			}
		})
	}
}
