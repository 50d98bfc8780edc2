// Package registry is kplane's service discovery on etcd.
//
// An instance registers itself under /service/<name>/<instance-id> with a
// JSON value (see Instance), attached to a lease kept alive by the etcd
// client's keepalive stream. Consumers watch the prefix and keep a local
// cache that survives etcd outages. The package does not start or stop
// instances (that is signalman) and does not decide anything.
package registry
