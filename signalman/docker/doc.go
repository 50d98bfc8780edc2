// Package docker is the signalman driver that runs instances as containers
// on one Docker engine, through the engine API (github.com/docker/docker
// client, API version negotiated down to 1.41).
//
// A service is a set of containers labelled kplane.managed=true,
// kplane.service, kplane.env, kplane.version and kplane.instance. The
// engine is the record of what runs: Instances lists by label, so a kplane
// restart neither loses nor duplicates instances, and the engine restarts
// a crashed container itself (restart policy on-failure). The driver keeps
// in memory only a per-target lock and the version of the latest Start.
//
// Containers register themselves in the registry; the driver hands them
// the addresses they need through their command line (Spec placeholders)
// and confirms through a Confirmer that they did. It does not build or
// pull service images, except BuildImage, which makes a FROM scratch image
// of one static binary offline (how kplane dev and the tests package the
// ticketing demo).
//
// See README.md for networking (host, or a bridge network the driver
// creates) and how the contract maps onto the engine.
package docker
