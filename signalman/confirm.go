package signalman

import (
	"context"
	"slices"
	"time"

	"github.com/kplane/kplane/registry"
)

// Confirmer tells a driver that instances have registered themselves.
// registry.Watcher implements it; every driver consumes it.
type Confirmer interface {
	WaitInstances(ctx context.Context, name string, ok func([]registry.Instance) bool) error
}

// clockSlack allows for an instance stamping its registration a little
// before the driver recorded starting it.
const clockSlack = time.Second

// RegisteredSince returns the condition "every instance of want is
// registered, by a registration made after it was started", for
// Confirmer.WaitInstances. An ID is reused when a number is freed or a
// crashed instance is restarted, and the old registration lives on until
// its lease expires: it must not confirm the new instance. It compares
// clocks, so it suits drivers whose instances share the driver's host.
func RegisteredSince(want []Instance) func([]registry.Instance) bool {
	return func(registered []registry.Instance) bool {
		for _, w := range want {
			if !slices.ContainsFunc(registered, func(in registry.Instance) bool {
				return in.ID == w.ID && !in.Started.Before(w.Started.Add(-clockSlack))
			}) {
				return false
			}
		}
		return true
	}
}

// Deregistered returns the condition "none of ids is registered", for
// Confirmer.WaitInstances after stopping instances.
func Deregistered(ids []string) func([]registry.Instance) bool {
	return func(registered []registry.Instance) bool {
		return !slices.ContainsFunc(registered, func(in registry.Instance) bool { return slices.Contains(ids, in.ID) })
	}
}
