// Package etcdcluster starts a real multi-member etcd cluster for tests:
// Debian's etcd-server binary, one process per member, free loopback ports
// and a temp data dir each. A test can find the Raft leader, kill a member
// (SIGKILL, as a crash or an OOM kill would), stop it gracefully, and start
// it again on the same data dir and ports, where it rejoins the cluster.
//
// Every member is stopped by its PID and the data dirs removed when the
// test ends, also when it fails. When the etcd binary is absent the test
// is skipped, or failed under KPLANE_REQUIRE_INTEGRATION=1 (see
// internal/testenv).
//
// It is for tests only: production runs its own etcd cluster, and dev
// mode the embedded one (internal/etcdserver).
package etcdcluster
