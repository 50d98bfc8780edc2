// Package marathon is the signalman driver for Mesos/Marathon: a target is
// one Marathon app, scaled by changing its instance count.
//
// Scale reads the app (GET /v2/apps/{id}), sends PUT /v2/apps/{id} with
// {"instances": N} and follows the deployment Marathon answers with:
// it polls GET /v2/deployments until that deployment is gone, then the app
// until N tasks run and, when the app has health checks, N are healthy
// (tasksHealthy), then, with a Confirmer, until the registry lists N
// instances of the service in the target's environment.
//
// An app that a running deployment locks (409 "App is locked") makes Scale
// return signalman.ErrBusy; Config.Force opts in to ?force=true, which
// makes Marathon cancel the running deployment instead.
//
// Roll (signalman.Roller) deploys a version: PUT /v2/apps/{id} with the
// new image, args, version label, instance count and upgradeStrategy,
// then the deployment, the tasks and the registry are followed, each new
// instance gated, and a failure rolled back (DELETE /v2/deployments/{id},
// or a PUT of the previous definition).
//
// The driver does not create or delete apps (so no environments) and
// does not choose which tasks a scale-down kills: Marathon does (by
// default the youngest first).
package marathon
