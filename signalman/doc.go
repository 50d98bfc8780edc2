// Package signalman acts on scaling and deployment decisions: it turns "run
// N instances of this service in this environment" into running instances
// through an orchestrator driver (subpackages process, docker, swarm,
// marathon). What the drivers share lives here: the contract
// (Orchestrator, InstanceDriver), the registry confirmation (Confirmer),
// the per-target try-lock (Locks), the revert-on-timeout wait of
// schedulers that converge by themselves (Converge), rolling deploys and
// environments (Deployer).
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
package signalman
