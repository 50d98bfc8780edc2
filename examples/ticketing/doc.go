// Package ticketing runs the services of kplane's demo workload, modelled
// on an online ticket seller: inventory (events, stock, orders, tickets)
// and checkpoint (venue access control, which calls inventory through the
// registry).
//
// Run starts one service instance: it listens (port 0 works: the
// registered address is the one actually bound), registers in etcd,
// serves the service's API with /healthz and /metrics, and when its
// context ends deregisters at once and shuts down gracefully. `kplane dev`
// starts instances as child processes (`kplane ticketing inventory ...`);
// cmd/ticketing is the same as a standalone binary to copy.
//
// The services themselves live in subpackages: inventory, checkpoint, the
// shared wire format in api, observability in instrument, and a load
// generator in loadgen. This package only wires them, so it is the one to
// read to see how a service joins kplane.
package ticketing
