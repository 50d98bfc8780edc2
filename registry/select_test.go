package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

func TestSelect(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	// inventory: shared a, b; build-7's c; another build's d.
	// checkpoint: only build-7's e. orders: only tagged x.
	for _, in := range []registry.Instance{
		instance("inventory", "a"),
		instance("inventory", "b"),
		instance("inventory", "c", "build-7"),
		instance("inventory", "d", "build-9", "canary"),
		instance("checkpoint", "e", "build-7"),
		instance("orders", "x", "build-9"),
		inQA(instance("inventory", "q")),
	} {
		put(t, c, in)
	}
	w := startWatcher(t, c, nil)
	waitFor(t, w, "orders", 5*time.Second, "all instances", hasIDs("x"))
	waitFor(t, w, "inventory", 5*time.Second, "all instances", hasIDs("a,b,c,d,q"))

	for _, tc := range []struct {
		name    string
		service string
		sel     registry.Selector
		want    string // IDs, or "" with wantErr
		wantErr bool
	}{
		{"no tag: every instance", "inventory", registry.Selector{}, "a,b,c,d,q", false},
		{"env: only that environment", "inventory", registry.Selector{Env: "qa"}, "q", false},
		{"env and tag", "inventory", registry.Selector{Env: "dev", Tag: "build-7"}, "c", false},
		{"env, tag fallback stays in env", "inventory", registry.Selector{Env: "dev", Tag: "build-8", Fallback: registry.FallbackUntagged}, "a,b", false},
		{"env without instances: error", "inventory", registry.Selector{Env: "prod"}, "", true},
		{"tag matches: only tagged", "inventory", registry.Selector{Tag: "build-7"}, "c", false},
		{"tag matches: fallback unused", "inventory", registry.Selector{Tag: "build-7", Fallback: registry.FallbackAny}, "c", false},
		{"second tag of an instance", "inventory", registry.Selector{Tag: "canary"}, "d", false},
		{"no match, none: error", "inventory", registry.Selector{Tag: "build-8"}, "", true},
		{"no match, untagged: shared pool", "inventory", registry.Selector{Tag: "build-8", Fallback: registry.FallbackUntagged}, "a,b,q", false},
		{"no match, any: everything", "inventory", registry.Selector{Tag: "build-8", Fallback: registry.FallbackAny}, "a,b,c,d,q", false},
		{"no match, untagged, none untagged", "orders", registry.Selector{Tag: "build-7", Fallback: registry.FallbackUntagged}, "", true},
		{"no match, any, only other builds", "orders", registry.Selector{Tag: "build-7", Fallback: registry.FallbackAny}, "x", false},
		{"only tagged, asked untagged", "checkpoint", registry.Selector{}, "e", false},
		{"unknown service", "payments", registry.Selector{}, "", true},
		{"unknown service, fallback any", "payments", registry.Selector{Tag: "build-7", Fallback: registry.FallbackAny}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := w.Select(tc.service, tc.sel)
			if tc.wantErr {
				if !errors.Is(err, registry.ErrNoInstances) {
					t.Fatalf("Select = %v, %v; want ErrNoInstances", ids(got), err)
				}
				return
			}
			if err != nil || ids(got) != tc.want {
				t.Fatalf("Select = %q, %v; want %q", ids(got), err, tc.want)
			}
		})
	}
}

func inQA(in registry.Instance) registry.Instance {
	in.Env = "qa"
	return in
}
