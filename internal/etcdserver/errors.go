package etcdserver

import "errors"

var (
	// ErrAddrInUse means a client or peer port is already bound by another
	// process (often another `kplane dev` or an etcd left running).
	ErrAddrInUse = errors.New("address already in use")

	// ErrDataDirInUse means another process (or another Server in this
	// process) holds the data dir.
	ErrDataDirInUse = errors.New("data dir in use by another etcd")
)
