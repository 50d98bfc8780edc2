// Package scrape is the scout source of kplane dev: with no Prometheus, it
// reads every registered instance's /metrics itself, parses the text
// exposition format with prometheus/common's expfmt, and computes rates
// from the counters' change between two ticks.
//
// Per tick, for each service:
//
//   - QPS is the requests per second of http_requests_total, without the
//     routes of metric scrapes and health checks (ExcludeRoutes);
//   - CPU is Δprocess_cpu_seconds_total/Δt of each instance, averaged over
//     the instances, divided by CPULimit (cores);
//   - memory is process_resident_memory_bytes averaged over the instances,
//     divided by MemoryLimit (bytes).
//
// Rates need two readings of an instance: on an instance's first tick its
// QPS and CPU are unknown, and a service none of whose instances has two
// readings yet is Missing "warming up" (memory is known at once). A counter
// that went down (the instance restarted under the same ID) counts from
// zero, as Prometheus's rate does.
//
// Partial answers: instances are scraped concurrently (Concurrency at a
// time, each within Timeout). When no instance of a service answered, all
// its metrics are Missing with the first error. When some answered, QPS is
// the mean rate of the instances measured times the number of registered
// instances — an unanswered instance is assumed as busy as the others, not
// idle, so a slow instance never reads as a drop in traffic — and CPU and
// memory are the means over the instances measured.
//
// This source makes one request per instance, not one per metric: it is
// for the few dozen instances of a dev machine. Fleets use Prometheus
// (scout/prometheus), which scrapes them anyway.
package scrape
