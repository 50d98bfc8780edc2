// Package swarm is the signalman driver for Docker Swarm: a target is one
// replicated Swarm service, scaled by changing its replicas.
//
// The driver finds a target's service by the labels kplane.service and
// kplane.env, or else by the name <service>-<env>. Scale writes the
// replicas with ServiceUpdate under the version it read, re-reading and
// retrying when Swarm answers "update out of sequence", and returns once
// exactly N tasks run (and, with a Confirmer, N instances are registered).
//
// Roll (signalman.Roller) deploys a version: it sets the service's image,
// arguments, version label, replicas and update bounds in one
// ServiceUpdate, follows Swarm's rolling update and the registry, gates
// each new instance, and has Swarm roll back when that fails.
//
// The driver does not create or remove services (so no environments),
// and does not pick the tasks a scale-down stops: Swarm stops the highest
// slots.
package swarm
