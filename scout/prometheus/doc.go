// Package prometheus is a scout source that reads QPS, CPU and memory of
// every service from a Prometheus server through client_golang's API
// client.
//
// Each tick it sends one instant query per metric, grouped by the service
// label, so three HTTP requests measure the whole fleet whatever its size
// (per-object polling is what made KEDA unmanageable at 1000 scaled
// objects). The default queries (DefaultQueries) match the ticketing demo's
// instrumentation: http_requests_total{service,route,code} without the
// /metrics and /healthz routes, and the process collector's
// process_cpu_seconds_total and process_resident_memory_bytes, joined to
// the service label through http_requests_total of the same target. CPU and
// memory come out as fractions of one instance's limits. Only targets whose
// last scrape succeeded (up == 1) count, so a dead instance's last minute
// of counters does not pass for live traffic.
//
// A query that fails makes its metric Missing for every service, with the
// error as the reason; a service the result has no series for is Missing
// "no series"; only when every query fails does Collect return an error.
// Prometheus being down is therefore missing data, never zero.
//
//	src, err := prometheus.New(prometheus.Config{URL: "http://127.0.0.1:9090"})
//	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: watcher})
//
// The package does not configure Prometheus: its scrape configs are the
// operator's.
package prometheus
