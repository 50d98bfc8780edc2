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
// Environments (signalman.EnvDestroyer): a Roll into an environment that
// does not run the service yet creates its Swarm service from the
// service's templates (Config.Images, Args, Env) on Config.Network,
// labelled kplane.managed; DestroyEnv removes the services it created
// there and waits for their tasks to stop and their instances to
// deregister. Services someone else created are never removed.
//
// The driver does not pick the tasks a scale-down stops: Swarm stops the
// highest slots.
package swarm
