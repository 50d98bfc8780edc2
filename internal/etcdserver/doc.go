// Package etcdserver runs a single-node etcd inside the kplane process, for
// `kplane dev` and for tests.
//
// It wraps go.etcd.io/etcd/server/v3/embed: Start returns once the member
// is serving, with a one-line error when a port is busy or the data dir is
// unusable, and Close stops it. A data dir survives a clean Close and a
// crash, so the next Start on it resumes where the last one stopped. Two
// Starts on one data dir at the same time are refused instead of hanging.
//
// etcd's own zap logging is reduced to errors and forwarded to the slog
// logger passed in. The package does not configure TLS, authentication or
// clustering: production points kplane at a real etcd cluster instead.
package etcdserver
