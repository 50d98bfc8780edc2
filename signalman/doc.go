// Package signalman acts on scaling and deployment decisions: it turns "run
// N instances of this service in this environment" into running instances
// through an orchestrator driver (subpackages process, docker, swarm,
// marathon). What the drivers share lives here: the contract
// (Orchestrator, InstanceDriver), the registry confirmation (Confirmer),
// the per-target try-lock (Locks), the revert-on-timeout wait of
// schedulers that converge by themselves (Converge), rolling deploys and
// environments (Deployer). The Deployer rolls instances one at a time
// through an InstanceDriver (process, docker), or hands the deploy to a
// Roller (swarm, marathon), whose scheduler rolls by itself while the
// driver follows it (Follow) and rolls it back when it fails. Environments
// need a driver that can tear one down (EnvDestroyer): every
// InstanceDriver, and the swarm Roller, whose Roll creates a service an
// environment does not run yet.
//
// Signalman does not decide how many instances to run (that is
// headquarter) and does not locate instances for callers (that is
// registry); it only confirms, through the registry, that the instances it
// started are registered before it reports success.
//
// Rolling deploys (Deployer) record every deploy and step in a
// DeployStore: SQLDeployStore on kplane's SQL store (SQLite or
// MySQL/MariaDB), so that the records survive a restart and every replica
// sees them, or MemoryDeployStore for tests and a kplane without one.
//
// A deploy is owned by the replica that runs it. Each replica holds a key
// under /kplane/replicas/ on its own etcd session while it runs
// (Presence); Absence declares a replica gone once its key has been
// missing for a grace period longer than the session's lease, and a
// Sweeper on every replica then ends that replica's running deploys as
// failed, with an "interrupt" step naming it. Signalman never sweeps on a
// guess: when etcd cannot be read, nothing is declared gone.
package signalman
