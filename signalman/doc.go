// Package signalman acts on scaling and deployment decisions: it turns "run
// N instances of this service in this environment" into running instances
// through an orchestrator driver (subpackages: process, and later docker,
// swarm, marathon).
//
// Signalman does not decide how many instances to run (that is
// headquarter) and does not locate instances for callers (that is
// registry); it only confirms, through the registry, that the instances it
// started are registered before it reports success.
package signalman
