// Package scout observes the services in the registry: every tick
// (DefaultInterval, 5 s) it asks its sources for QPS, CPU and memory of ALL
// services at once and publishes a Snapshot with, per service, each
// metric's Sample and the number of registered instances.
//
// A value that a source did not return, that failed, or that is older than
// the maximum age is Missing, with a Reason a person can read. It is never
// zero: zero QPS is a measurement, "Prometheus is down" is not, and the
// autoscaler must never scale a service down because it could not see it.
//
// Sources are subpackages named after what they read: scout/prometheus
// (PromQL), scout/elasticsearch (access-log counts) and scout/scrape (each
// instance's /metrics, the embedded default of kplane dev). A source makes
// one grouped request per metric per tick for all services, never one per
// service, so the cost of a tick does not grow with the fleet. README.md
// says how to write one.
//
// scout decides nothing and changes nothing: headquarter consumes its
// snapshots through its own small interface, connected in cmd/kplane.
//
//	s, err := scout.New(scout.Config{
//		Sources:  []scout.Source{src},
//		Registry: watcher,
//		Logger:   log.With("component", "scout"),
//	})
//	go s.Run(ctx)
//	snaps, cancel := s.Subscribe()
//	defer cancel()
//	for snap := range snaps { ... }
//
// Scout keeps the last hour of samples per service in memory (History,
// Series) for the UI's sparklines; it stores nothing durable.
package scout
