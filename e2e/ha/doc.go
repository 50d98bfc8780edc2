// Package ha holds the high-availability scenarios of kplane, run for
// real on one machine: a three-member cluster of Debian's etcd
// (internal/etcdcluster) whose leader is killed, registrars cut off from
// etcd for a minute, and `kplane server` replicas (shared MariaDB, the
// docker driver on the local engine) whose elected leader is killed while
// it scales a service and runs a pipeline stage. Each scenario is bounded in time, uses loopback only, stops
// every process it started and logs the figures that docs/reliability.md
// reports.
//
// The tests skip when etcd (or, for the leader test, MariaDB, Prometheus
// or the Docker engine) is missing, and fail instead under
// KPLANE_REQUIRE_INTEGRATION=1 (CI).
package ha
