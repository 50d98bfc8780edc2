// Package registry is kplane's service discovery on etcd.
//
// An instance registers itself under /service/<name>/<instance-id> with a
// JSON value (see Instance), attached to a lease kept alive by the etcd
// client's keepalive stream. A Registrar does that for one instance and
// keeps doing it through etcd outages and restarts: when the keepalive
// stream ends it grants a new lease and writes the key again, with
// jittered backoff, until its context ends; then it revokes the lease so
// the instance disappears at once. After an outage of any length it is
// registered again within RegisterAgainWithin (2 s) of etcd being
// reachable, each registrar at a random point of that window. A crashed instance disappears when its
// lease expires, within the TTL (DefaultTTL, 10 s).
//
// Consumers run a Watcher: it lists the prefix, watches it from the
// listed revision (requiring a leader), re-lists after a compaction or any
// watch failure, and keeps serving the last known instances while etcd is
// unreachable. Select picks instances by tag with an explicit Fallback
// rule, and Transport (or NewClient) sends http://<service>/path requests
// to them round-robin, retrying on another instance when that is safe.
//
//	w := registry.NewWatcher(registry.WatcherConfig{Client: etcd, Logger: log})
//	go w.Run(ctx)
//	<-w.Ready()
//	client := registry.NewClient(registry.TransportConfig{Resolver: w})
//	resp, err := client.Get("http://inventory/events")
//
// The package does not start or stop instances (that is signalman) and
// decides nothing. It does not use etcd's naming/endpoints package: that
// stores its own Endpoint JSON for gRPC resolvers, while our values are
// Instance documents that the UI, the autoscaler and HTTP callers read.
package registry
