package signalman

import "errors"

var (
	// ErrUnknownService means the driver has no definition for the service.
	ErrUnknownService = errors.New("unknown service")
	// ErrBusy means another operation on the same target is in progress.
	// Callers retry later; nothing was changed.
	ErrBusy = errors.New("orchestrator busy")
	// ErrInvalid means the request itself is wrong (a negative count, an
	// empty service name).
	ErrInvalid = errors.New("invalid request")
	// ErrUnknownInstance means the target has no instance with that ID.
	ErrUnknownInstance = errors.New("unknown instance")
	// ErrNotConfirmed means instances were started but did not register in
	// time; they have been stopped again.
	ErrNotConfirmed = errors.New("instances not confirmed by the registry")
	// ErrSuperseded means someone else changed the target's instance
	// count while a driver waited for its own change: the other change
	// stands and was not reverted.
	ErrSuperseded = errors.New("superseded by another change")
	// ErrUnsupported means the configured driver cannot do what was asked
	// (creating or destroying an environment on swarm or marathon);
	// nothing was done.
	ErrUnsupported = errors.New("not supported by this driver")
	// ErrRolledBack means a Roller's rollout failed and the scheduler runs
	// the previous definition of the service again; the error also wraps
	// the cause.
	ErrRolledBack = errors.New("rolled back")
)
