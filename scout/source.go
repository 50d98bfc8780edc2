package scout

import (
	"context"
	"time"

	"github.com/kplane/kplane/registry"
)

// Source measures metrics of many services at once.
//
// Collect is called once per tick with every registered service (each
// with its instances) and the tick time. It must make one grouped request
// per metric for all services together, never one per service: the cost of
// a tick must not grow with the number of services (the scrape source,
// which reads each instance, is the one exception and bounds its
// concurrency).
//
// It returns, per service name, the samples it has; it may return only
// some metrics and only some services (a metric it does not provide is
// simply absent), and may return services that are not in services (they
// are ignored). A sample it could not measure for a service is returned
// Missing with a reason. Collect returns an error only when it measured
// nothing at all this tick (server down, query rejected): scout then marks
// every metric no other source provided as Missing with that error.
//
// ctx ends at the tick's deadline or when scout stops; Collect must then
// return promptly. The returned maps belong to the caller. Collect is never
// called concurrently with itself by one Scout, but a Source may be shared.
//
// A Source that implements fmt.Stringer is named by it in logs and
// metrics.
type Source interface {
	Collect(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[Metric]Sample, error)
}

// Registry lists the registered services; *registry.Watcher is one.
type Registry interface {
	Services() []registry.Service
}

// Clock is the time scout runs on. Tests pass a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[Metric]Sample, error)

// Collect calls f.
func (f SourceFunc) Collect(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[Metric]Sample, error) {
	return f(ctx, services, now)
}

var _ Source = SourceFunc(nil)
