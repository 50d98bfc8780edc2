package process

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

func TestStartStopVersions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.driver.Scale(ctx, inv, 2); err != nil {
		t.Fatal(err)
	}
	in, err := f.driver.Start(ctx, inv, "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "inventory-dev-3" || in.Version != "2.0.0" {
		t.Fatalf("Start = %+v, want inventory-dev-3 at 2.0.0", in)
	}
	// Start returns once the registry lists the instance at its version.
	regs := f.watcher.Instances("inventory")
	if i := slices.IndexFunc(regs, func(r registry.Instance) bool { return r.ID == in.ID }); i < 0 || regs[i].Version != "2.0.0" {
		t.Fatalf("registry right after Start: %+v", regs)
	}
	if err := f.driver.Stop(ctx, inv, "inventory-dev-1"); err != nil {
		t.Fatal(err)
	}
	// Stop returns once callers can no longer pick the instance.
	if got := f.registered(t); slices.Contains(got, "inventory-dev-1") {
		t.Fatalf("registry right after Stop still lists inventory-dev-1: %v", got)
	}
	// Scale now starts the version of the latest Start, at the free number.
	if _, err := f.driver.Scale(ctx, inv, 3); err != nil {
		t.Fatal(err)
	}
	insts, _ := f.driver.Instances(ctx, inv)
	got := map[string]string{}
	for _, in := range insts {
		got[in.ID] = in.Version
	}
	want := map[string]string{"inventory-dev-1": "2.0.0", "inventory-dev-2": "1.0.0", "inventory-dev-3": "2.0.0"}
	if len(got) != len(want) {
		t.Fatalf("instances %v, want %v", got, want)
	}
	for id, v := range want {
		if got[id] != v {
			t.Fatalf("instances %v, want %v", got, want)
		}
	}
	if err := f.driver.Stop(ctx, inv, "inventory-dev-9"); !errors.Is(err, signalman.ErrUnknownInstance) {
		t.Fatalf("Stop of an unknown instance: %v, want ErrUnknownInstance", err)
	}
	if _, err := f.driver.Start(ctx, signalman.Target{Service: "nope"}, "1"); !errors.Is(err, signalman.ErrUnknownService) {
		t.Fatalf("Start of an unknown service: %v, want ErrUnknownService", err)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	f := newFixture(t, "--mode", "exit")
	if _, err := f.driver.Start(context.Background(), inv, "2.0.0"); !errors.Is(err, signalman.ErrNotConfirmed) {
		t.Fatalf("err = %v, want ErrNotConfirmed", err)
	}
	if insts, _ := f.driver.Instances(context.Background(), inv); len(insts) != 0 {
		t.Fatalf("instances left: %+v", insts)
	}
	f.driver.mu.Lock()
	g := f.driver.groups[inv]
	desired, version := g.desired, g.version
	f.driver.mu.Unlock()
	if desired != 0 || version != "" {
		t.Fatalf("after a failed Start: desired %d, version %q; want 0 and unchanged", desired, version)
	}
}

func TestDestroyEnv(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alpha := signalman.Target{Service: "inventory", Env: "alpha-7"}
	if _, err := f.driver.Scale(ctx, inv, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.driver.Scale(ctx, alpha, 2); err != nil {
		t.Fatal(err)
	}
	f.waitRegistered(t, "inventory-alpha-7-1", "inventory-alpha-7-2", "inventory-dev-1")
	if err := f.driver.DestroyEnv(ctx, "alpha-7"); err != nil {
		t.Fatal(err)
	}
	if got := f.registered(t); !slices.Equal(got, []string{"inventory-dev-1"}) {
		t.Fatalf("registry after DestroyEnv = %v, want only the dev instance", got)
	}
	if insts, _ := f.driver.Instances(ctx, alpha); len(insts) != 0 {
		t.Fatalf("alpha instances left: %+v", insts)
	}
	if err := f.driver.DestroyEnv(ctx, ""); !errors.Is(err, signalman.ErrInvalid) {
		t.Fatalf("DestroyEnv(\"\") = %v, want ErrInvalid", err)
	}
}
